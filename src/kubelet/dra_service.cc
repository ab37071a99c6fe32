#include "dra_service.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <exception>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "accel_dra/common/log.h"
#include "dra/v1/api.grpc.pb.h"
#include "dra/v1beta1/api.grpc.pb.h"

namespace accel_dra::kubelet {
namespace {

namespace v1 = ::k8s::io::kubelet::pkg::apis::dra::v1;
namespace v1beta1 = ::k8s::io::kubelet::pkg::apis::dra::v1beta1;

constexpr char kMissingResult[] =
    "internal error in the DRA driver: it returned no result for this claim; kubelet retries "
    "automatically, check the driver logs if this persists";

// Claims of a request, de-duplicated by UID (kubelet keys answers by UID anyway).
template <typename Request>
Expected<std::vector<model::ClaimRef>> ClaimsOf(const Request& request) {
  std::vector<model::ClaimRef> claims;
  std::set<std::string> seen;
  for (const auto& c : request.claims()) {
    if (c.uid().empty()) {
      return InvalidArgument("ResourceClaim " + c.namespace_() + "/" + c.name() +
                             " in the request has no UID");
    }
    if (!seen.insert(c.uid()).second) continue;
    claims.push_back(model::ClaimRef{c.namespace_(), c.name(), c.uid()});
  }
  return claims;
}

double MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

std::string Describe(const model::ClaimRef& c) {
  return c.ns + "/" + c.name + " (uid " + c.uid + ")";
}

template <typename Map>
void WarnUnrequested(const Map& results, const std::vector<model::ClaimRef>& claims,
                     std::string_view op) {
  for (const auto& [uid, unused] : results) {
    bool requested = false;
    for (const auto& c : claims) requested = requested || c.uid == uid;
    if (!requested) {
      spdlog::warn("{}: driver returned a result for claim UID {} that was not requested; dropped",
                   op, uid);
    }
  }
}

// Kubelet's view of a prepared device: only the DRA wire fields (request names, pool, device, CDI
// device IDs and, in v1, the share ID). The record's settings (sharing, admin access, time slice,
// device nodes, mounts) stay in the driver.
template <typename WireDevice>
void SetWireFields(const model::PreparedDevice& d, WireDevice* dev) {
  for (const auto& r : d.request_names) dev->add_request_names(r);
  dev->set_pool_name(d.pool);
  dev->set_device_name(d.device);
  for (const auto& id : d.cdi_device_ids) dev->add_cdi_device_ids(id);
  if constexpr (requires { dev->set_share_id(std::string()); }) {
    if (d.share_id) dev->set_share_id(*d.share_id);
  }
}

// Runs `fn` (which calls the preparer), turning an escaped exception into a gRPC INTERNAL error.
template <typename Fn>
grpc::Status Guarded(std::string_view op, Fn&& fn) {
  try {
    fn();
    return grpc::Status::OK;
  } catch (const std::exception& e) {
    spdlog::error("{}: unexpected exception from the claim preparer: {}", op, e.what());
    return {grpc::StatusCode::INTERNAL, std::string(op) + ": internal error: " + e.what()};
  } catch (...) {
    spdlog::error("{}: unexpected exception from the claim preparer", op);
    return {grpc::StatusCode::INTERNAL, std::string(op) + ": internal error"};
  }
}

// Kubelet's deadline and cancellation of one call, for the version-free core. The server
// context outlives the call into the preparer (which returns before the handler does).
model::CallContext ContextOf(grpc::ServerContext* server) {
  if (server == nullptr) return {};
  std::optional<model::CallContext::Clock::time_point> deadline;
  const auto remaining = server->deadline() - std::chrono::system_clock::now();
  // No deadline is the far future (time_point::max()); a day is more than kubelet ever allows.
  if (remaining < std::chrono::hours(24)) {
    deadline = model::CallContext::Clock::now() +
               std::chrono::duration_cast<model::CallContext::Clock::duration>(remaining);
  }
  return model::CallContext(deadline, [server] { return server->IsCancelled(); });
}

template <typename PrepareRequest, typename PrepareResponse>
grpc::Status Prepare(model::ClaimPreparer& preparer, std::string_view api,
                     grpc::ServerContext* server, const PrepareRequest& request,
                     PrepareResponse* response) {
  const std::string op = "NodePrepareResources(" + std::string(api) + ")";
  LOG_V(6, "{} request: {}", op, request.ShortDebugString());
  auto claims = ClaimsOf(request);
  if (!claims.ok()) {
    spdlog::error("{}: {}", op, claims.status().message());
    return {grpc::StatusCode::INVALID_ARGUMENT, claims.status().message()};
  }
  if (claims->empty()) {
    LOG_V(6, "{} response: {}", op, response->ShortDebugString());
    return grpc::Status::OK;
  }

  const auto start = std::chrono::steady_clock::now();
  std::map<std::string, model::PrepareResult> results;
  const model::CallContext context = ContextOf(server);
  grpc::Status st = Guarded(op, [&] { results = preparer.Prepare(*claims, context); });
  if (!st.ok()) return st;
  WarnUnrequested(results, *claims, op);

  std::string summary;
  for (const model::ClaimRef& claim : *claims) {
    auto& out = (*response->mutable_claims())[claim.uid];
    auto it = results.find(claim.uid);
    std::string outcome;
    if (it == results.end()) {
      out.set_error(kMissingResult);
      outcome = "error: no result from driver";
    } else if (!it->second.ok()) {
      out.set_error(it->second.error);
      outcome = "error: " + it->second.error;
    } else {
      for (const model::PreparedDevice& d : it->second.devices) {
        SetWireFields(d, out.add_devices());
      }
      outcome = "ok, " + std::to_string(it->second.devices.size()) + " device(s)";
    }
    if (!summary.empty()) summary += "; ";
    summary += Describe(claim) + ": " + outcome;
  }
  spdlog::info("{}: {} claim(s) in {:.1f} ms: {}", op, claims->size(), MillisSince(start), summary);
  LOG_V(6, "{} response: {}", op, response->ShortDebugString());
  return grpc::Status::OK;
}

template <typename UnprepareRequest, typename UnprepareResponse>
grpc::Status Unprepare(model::ClaimPreparer& preparer, std::string_view api,
                       const UnprepareRequest& request, UnprepareResponse* response) {
  const std::string op = "NodeUnprepareResources(" + std::string(api) + ")";
  LOG_V(6, "{} request: {}", op, request.ShortDebugString());
  auto claims = ClaimsOf(request);
  if (!claims.ok()) {
    spdlog::error("{}: {}", op, claims.status().message());
    return {grpc::StatusCode::INVALID_ARGUMENT, claims.status().message()};
  }
  if (claims->empty()) {
    LOG_V(6, "{} response: {}", op, response->ShortDebugString());
    return grpc::Status::OK;
  }

  const auto start = std::chrono::steady_clock::now();
  std::map<std::string, std::string> results;
  grpc::Status st = Guarded(op, [&] { results = preparer.Unprepare(*claims); });
  if (!st.ok()) return st;
  WarnUnrequested(results, *claims, op);

  std::string summary;
  for (const model::ClaimRef& claim : *claims) {
    auto& out = (*response->mutable_claims())[claim.uid];
    auto it = results.find(claim.uid);
    std::string outcome = "ok";
    if (it == results.end()) {
      out.set_error(kMissingResult);
      outcome = "error: no result from driver";
    } else if (!it->second.empty()) {
      out.set_error(it->second);
      outcome = "error: " + it->second;
    }
    if (!summary.empty()) summary += "; ";
    summary += Describe(claim) + ": " + outcome;
  }
  spdlog::info("{}: {} claim(s) in {:.1f} ms: {}", op, claims->size(), MillisSince(start), summary);
  LOG_V(6, "{} response: {}", op, response->ShortDebugString());
  return grpc::Status::OK;
}

class DraV1Service final : public v1::DRAPlugin::Service {
 public:
  explicit DraV1Service(std::shared_ptr<model::ClaimPreparer> p) : preparer_(std::move(p)) {}
  grpc::Status NodePrepareResources(grpc::ServerContext* ctx,
                                    const v1::NodePrepareResourcesRequest* req,
                                    v1::NodePrepareResourcesResponse* resp) override {
    return Prepare(*preparer_, "v1", ctx, *req, resp);
  }
  grpc::Status NodeUnprepareResources(grpc::ServerContext*,
                                      const v1::NodeUnprepareResourcesRequest* req,
                                      v1::NodeUnprepareResourcesResponse* resp) override {
    return Unprepare(*preparer_, "v1", *req, resp);
  }

 private:
  std::shared_ptr<model::ClaimPreparer> preparer_;
};

class DraV1beta1Service final : public v1beta1::DRAPlugin::Service {
 public:
  explicit DraV1beta1Service(std::shared_ptr<model::ClaimPreparer> p) : preparer_(std::move(p)) {}
  grpc::Status NodePrepareResources(grpc::ServerContext* ctx,
                                    const v1beta1::NodePrepareResourcesRequest* req,
                                    v1beta1::NodePrepareResourcesResponse* resp) override {
    return Prepare(*preparer_, "v1beta1", ctx, *req, resp);
  }
  grpc::Status NodeUnprepareResources(grpc::ServerContext*,
                                      const v1beta1::NodeUnprepareResourcesRequest* req,
                                      v1beta1::NodeUnprepareResourcesResponse* resp) override {
    return Unprepare(*preparer_, "v1beta1", *req, resp);
  }

 private:
  std::shared_ptr<model::ClaimPreparer> preparer_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeDraService(DraApiVersion api,
                                              std::shared_ptr<model::ClaimPreparer> preparer) {
  if (api == DraApiVersion::kV1) return std::make_unique<DraV1Service>(std::move(preparer));
  return std::make_unique<DraV1beta1Service>(std::move(preparer));
}

}  // namespace accel_dra::kubelet
