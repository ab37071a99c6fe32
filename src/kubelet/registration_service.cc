#include "registration_service.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "accel_dra/common/log.h"
#include "accel_dra/common/metrics.h"
#include "pluginregistration/api.grpc.pb.h"

namespace accel_dra::kubelet {
namespace {

class RegistrationServiceImpl final : public ::pluginregistration::Registration::Service {
 public:
  RegistrationServiceImpl(PluginInfo info, RegistrationStatusCallback cb)
      : info_(std::move(info)), on_status_(std::move(cb)) {}

  grpc::Status GetInfo(grpc::ServerContext*, const ::pluginregistration::InfoRequest*,
                       ::pluginregistration::PluginInfo* out) override {
    out->set_type(info_.type);
    out->set_name(info_.name);
    out->set_endpoint(info_.endpoint);
    for (const auto& v : info_.supported_versions) out->add_supported_versions(v);
    LOG_V(6, "GetInfo response: {}", out->ShortDebugString());
    return grpc::Status::OK;
  }

  grpc::Status NotifyRegistrationStatus(
      grpc::ServerContext*, const ::pluginregistration::RegistrationStatus* status,
      ::pluginregistration::RegistrationStatusResponse*) override {
    LOG_V(6, "NotifyRegistrationStatus request: {}", status->ShortDebugString());
    if (status->plugin_registered()) {
      spdlog::info("kubelet registered DRA driver {} (endpoint {})", info_.name, info_.endpoint);
    } else {
      spdlog::error(
          "kubelet failed to register DRA driver {}: {}; the registration socket will be "
          "re-created so that kubelet tries again",
          info_.name, status->error().empty() ? "(no reason given)" : status->error());
    }
    Metrics().KubeletRegistered(status->plugin_registered());
    if (on_status_) on_status_(status->plugin_registered(), status->error());
    return grpc::Status::OK;
  }

 private:
  const PluginInfo info_;
  const RegistrationStatusCallback on_status_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeRegistrationService(PluginInfo info,
                                                       RegistrationStatusCallback on_status) {
  return std::make_unique<RegistrationServiceImpl>(std::move(info), std::move(on_status));
}

}  // namespace accel_dra::kubelet
