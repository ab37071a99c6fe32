#include "accel_dra/kubelet/kubelet_client.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "dra-health/v1/api.grpc.pb.h"
#include "dra-health/v1alpha1/api.grpc.pb.h"
#include "dra/v1/api.grpc.pb.h"
#include "dra/v1beta1/api.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "pluginregistration/api.grpc.pb.h"

namespace accel_dra::kubelet {
namespace {

namespace v1 = ::k8s::io::kubelet::pkg::apis::dra::v1;
namespace v1beta1 = ::k8s::io::kubelet::pkg::apis::dra::v1beta1;

std::string_view GrpcCodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

Status FromGrpc(const grpc::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  return {CodeFromGrpc(static_cast<int>(s.error_code())),
          std::string(what) + ": gRPC " + std::string(GrpcCodeName(s.error_code())) + ": " +
              s.error_message()};
}

void SetDeadline(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) {
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

template <typename Request>
void FillClaims(Request& req, const std::vector<model::ClaimRef>& claims) {
  for (const model::ClaimRef& c : claims) {
    auto* out = req.add_claims();
    out->set_namespace_(c.ns);
    out->set_name(c.name);
    out->set_uid(c.uid);
  }
}

template <typename Response>
std::map<std::string, model::PrepareResult> FromPrepareResponse(const Response& resp) {
  std::map<std::string, model::PrepareResult> out;
  for (const auto& [uid, claim] : resp.claims()) {
    model::PrepareResult r;
    r.error = claim.error();
    for (const auto& d : claim.devices()) {
      model::PreparedDevice dev;
      dev.request_names.assign(d.request_names().begin(), d.request_names().end());
      dev.pool = d.pool_name();
      dev.device = d.device_name();
      dev.cdi_device_ids.assign(d.cdi_device_ids().begin(), d.cdi_device_ids().end());
      if constexpr (requires { d.has_share_id(); }) {
        if (d.has_share_id()) dev.share_id = d.share_id();
      }
      r.devices.push_back(std::move(dev));
    }
    out.emplace(uid, std::move(r));
  }
  return out;
}

template <typename Response>
std::map<std::string, std::string> FromUnprepareResponse(const Response& resp) {
  std::map<std::string, std::string> out;
  for (const auto& [uid, claim] : resp.claims()) out.emplace(uid, claim.error());
  return out;
}

template <typename Api>
Expected<std::map<std::string, model::PrepareResult>> DoPrepare(
    const std::shared_ptr<grpc::Channel>& ch, const std::vector<model::ClaimRef>& claims,
    std::chrono::milliseconds timeout) {
  typename Api::NodePrepareResourcesRequest req;
  FillClaims(req, claims);
  typename Api::NodePrepareResourcesResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  auto stub = Api::DRAPlugin::NewStub(ch);
  grpc::Status s = stub->NodePrepareResources(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, "NodePrepareResources");
  return FromPrepareResponse(resp);
}

template <typename Api>
Expected<std::map<std::string, std::string>> DoUnprepare(const std::shared_ptr<grpc::Channel>& ch,
                                                         const std::vector<model::ClaimRef>& claims,
                                                         std::chrono::milliseconds timeout) {
  typename Api::NodeUnprepareResourcesRequest req;
  FillClaims(req, claims);
  typename Api::NodeUnprepareResourcesResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  auto stub = Api::DRAPlugin::NewStub(ch);
  grpc::Status s = stub->NodeUnprepareResources(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, "NodeUnprepareResources");
  return FromUnprepareResponse(resp);
}

// Tag types so the templates above can name the generated types of one version.
struct V1 {
  using DRAPlugin = v1::DRAPlugin;
  using NodePrepareResourcesRequest = v1::NodePrepareResourcesRequest;
  using NodePrepareResourcesResponse = v1::NodePrepareResourcesResponse;
  using NodeUnprepareResourcesRequest = v1::NodeUnprepareResourcesRequest;
  using NodeUnprepareResourcesResponse = v1::NodeUnprepareResourcesResponse;
};
struct V1beta1 {
  using DRAPlugin = v1beta1::DRAPlugin;
  using NodePrepareResourcesRequest = v1beta1::NodePrepareResourcesRequest;
  using NodePrepareResourcesResponse = v1beta1::NodePrepareResourcesResponse;
  using NodeUnprepareResourcesRequest = v1beta1::NodeUnprepareResourcesRequest;
  using NodeUnprepareResourcesResponse = v1beta1::NodeUnprepareResourcesResponse;
};

// Both dra-health versions number HealthStatus alike (UNKNOWN 0, HEALTHY 1, UNHEALTHY 2).
model::DeviceHealthStatus FromWire(int s) {
  switch (s) {
    case 1:
      return model::DeviceHealthStatus::kHealthy;
    case 2:
      return model::DeviceHealthStatus::kUnhealthy;
    default:
      return model::DeviceHealthStatus::kUnknown;
  }
}

// Reads one dra-health version's NodeWatchResources stream (the ::v1 or ::v1alpha1 types).
template <typename Service, typename Request, typename Response>
Status WatchHealth(const std::shared_ptr<grpc::Channel>& channel,
                   const std::function<bool(const std::vector<model::DeviceHealth>&)>& on_message,
                   std::chrono::milliseconds timeout) {
  auto stub = Service::NewStub(channel);
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  Request req;
  auto reader = stub->NodeWatchResources(&ctx, req);
  Response msg;
  bool stopped_by_caller = false;
  while (reader->Read(&msg)) {
    std::vector<model::DeviceHealth> devices;
    for (const auto& d : msg.devices()) {
      model::DeviceHealth h;
      h.pool = d.device().pool_name();
      h.device = d.device().device_name();
      h.health = FromWire(static_cast<int>(d.health()));
      h.last_updated_unix = d.last_updated_time();
      h.health_check_timeout_seconds = d.health_check_timeout_seconds();
      h.message = d.message();
      devices.push_back(std::move(h));
    }
    if (!on_message(devices)) {
      stopped_by_caller = true;
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status s = reader->Finish();
  if (stopped_by_caller) return Status::Ok();
  return FromGrpc(s, "NodeWatchResources");
}

}  // namespace

std::string_view DraApiVersionName(DraApiVersion v) {
  return v == DraApiVersion::kV1 ? "v1" : "v1beta1";
}

Code CodeFromGrpc(int grpc_code) {
  switch (static_cast<grpc::StatusCode>(grpc_code)) {
    case grpc::StatusCode::OK:
      return Code::kOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return Code::kInvalidArgument;
    case grpc::StatusCode::NOT_FOUND:
      return Code::kNotFound;
    case grpc::StatusCode::ALREADY_EXISTS:
      return Code::kAlreadyExists;
    case grpc::StatusCode::ABORTED:
      return Code::kConflict;
    case grpc::StatusCode::PERMISSION_DENIED:
      return Code::kPermissionDenied;
    case grpc::StatusCode::UNAUTHENTICATED:
      return Code::kUnauthenticated;
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::UNIMPLEMENTED:
      return Code::kFailedPrecondition;
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNAVAILABLE:
      return Code::kUnavailable;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Code::kDeadlineExceeded;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return Code::kResourceExhausted;
    case grpc::StatusCode::DATA_LOSS:
      return Code::kDataLoss;
    default:
      return Code::kInternal;
  }
}

std::shared_ptr<grpc::Channel> MakePrivateChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // A liveness check must notice a dead peer now, not after reconnect backoff of an older channel.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

RegistrationClient::RegistrationClient(const std::string& socket_path)
    : channel_(MakePrivateChannel("unix:" + socket_path)) {}

Expected<PluginInfo> RegistrationClient::GetInfo(std::chrono::milliseconds timeout) {
  auto stub = ::pluginregistration::Registration::NewStub(channel_);
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  ::pluginregistration::InfoRequest req;
  ::pluginregistration::PluginInfo resp;
  grpc::Status s = stub->GetInfo(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, "GetInfo");
  PluginInfo info;
  info.type = resp.type();
  info.name = resp.name();
  info.endpoint = resp.endpoint();
  info.supported_versions.assign(resp.supported_versions().begin(),
                                 resp.supported_versions().end());
  return info;
}

Status RegistrationClient::NotifyRegistrationStatus(bool registered, const std::string& error,
                                                    std::chrono::milliseconds timeout) {
  auto stub = ::pluginregistration::Registration::NewStub(channel_);
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  ::pluginregistration::RegistrationStatus req;
  req.set_plugin_registered(registered);
  req.set_error(error);
  ::pluginregistration::RegistrationStatusResponse resp;
  return FromGrpc(stub->NotifyRegistrationStatus(&ctx, req, &resp), "NotifyRegistrationStatus");
}

DraClient::DraClient(const std::string& socket_path, DraApiVersion api)
    : channel_(MakePrivateChannel("unix:" + socket_path)), api_(api) {}

Expected<std::map<std::string, model::PrepareResult>> DraClient::NodePrepareResources(
    const std::vector<model::ClaimRef>& claims, std::chrono::milliseconds timeout) {
  if (api_ == DraApiVersion::kV1) return DoPrepare<V1>(channel_, claims, timeout);
  return DoPrepare<V1beta1>(channel_, claims, timeout);
}

Expected<std::map<std::string, std::string>> DraClient::NodeUnprepareResources(
    const std::vector<model::ClaimRef>& claims, std::chrono::milliseconds timeout) {
  if (api_ == DraApiVersion::kV1) return DoUnprepare<V1>(channel_, claims, timeout);
  return DoUnprepare<V1beta1>(channel_, claims, timeout);
}

Status DraClient::WatchResources(
    const std::function<bool(const std::vector<model::DeviceHealth>&)>& on_message,
    std::chrono::milliseconds timeout, HealthApiVersion api) {
  if (api == HealthApiVersion::kV1) {
    return WatchHealth<::v1::DRAResourceHealth, ::v1::NodeWatchResourcesRequest,
                       ::v1::NodeWatchResourcesResponse>(channel_, on_message, timeout);
  }
  return WatchHealth<::v1alpha1::DRAResourceHealth, ::v1alpha1::NodeWatchResourcesRequest,
                     ::v1alpha1::NodeWatchResourcesResponse>(channel_, on_message, timeout);
}

std::string_view HealthApiVersionName(HealthApiVersion v) {
  return v == HealthApiVersion::kV1 ? "v1" : "v1alpha1";
}

std::string_view ServingStatusName(ServingStatus s) {
  switch (s) {
    case ServingStatus::kServing:
      return "SERVING";
    case ServingStatus::kNotServing:
      return "NOT_SERVING";
    case ServingStatus::kServiceUnknown:
      return "SERVICE_UNKNOWN";
    case ServingStatus::kUnknown:
      break;
  }
  return "UNKNOWN";
}

Expected<ServingStatus> CheckGrpcHealth(const std::string& target, const std::string& service,
                                        std::chrono::milliseconds timeout) {
  auto stub = ::grpc::health::v1::Health::NewStub(MakePrivateChannel(target));
  grpc::ClientContext ctx;
  SetDeadline(ctx, timeout);
  ::grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  ::grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, "Health/Check");
  switch (resp.status()) {
    case ::grpc::health::v1::HealthCheckResponse::SERVING:
      return ServingStatus::kServing;
    case ::grpc::health::v1::HealthCheckResponse::NOT_SERVING:
      return ServingStatus::kNotServing;
    case ::grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN:
      return ServingStatus::kServiceUnknown;
    default:
      return ServingStatus::kUnknown;
  }
}

}  // namespace accel_dra::kubelet
