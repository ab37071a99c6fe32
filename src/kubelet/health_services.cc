#include "health_services.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "accel_dra/common/log.h"
#include "dra-health/v1/api.grpc.pb.h"
#include "dra-health/v1alpha1/api.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace accel_dra::kubelet {

void StopSignal::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
}

bool StopSignal::stopped() const {
  std::lock_guard<std::mutex> l(mu_);
  return stopped_;
}

bool StopSignal::WaitFor(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, d, [this] { return stopped_; });
}

namespace {

namespace health = ::grpc::health::v1;

// The open streams of one streaming method, at most `max`.
class StreamSlots {
 public:
  StreamSlots(std::string method, int max) : method_(std::move(method)), max_(std::max(1, max)) {}

  // A held slot, released when it goes away; empty when all were taken.
  class Slot {
   public:
    explicit Slot(StreamSlots* owner) : owner_(owner) {}
    Slot(Slot&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)) {}
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (owner_ != nullptr) owner_->open_.fetch_sub(1);
    }
    explicit operator bool() const { return owner_ != nullptr; }

   private:
    StreamSlots* owner_;
  };

  Slot TryTake() {
    int n = open_.load();
    while (n < max_) {
      if (open_.compare_exchange_weak(n, n + 1)) return Slot(this);
    }
    return Slot(nullptr);
  }
  grpc::Status Refusal(const std::string& peer) const {
    spdlog::warn("{}: refusing a stream from {}: {} streams are open (the limit)", method_, peer,
                 max_);
    return {grpc::StatusCode::RESOURCE_EXHAUSTED,
            method_ + ": too many concurrent streams (limit " + std::to_string(max_) +
                "); close one and retry"};
  }

 private:
  const std::string method_;
  const int max_;
  std::atomic<int> open_{0};
};

class GrpcHealthService final : public health::Health::Service {
 public:
  GrpcHealthService(LivenessCheck check, std::shared_ptr<StopSignal> stop, int max_streams,
                    DegradedState degraded)
      : check_(std::move(check)),
        stop_(std::move(stop)),
        streams_("grpc.health.v1.Health/Watch", max_streams),
        degraded_(std::move(degraded)) {}

  grpc::Status Check(grpc::ServerContext*, const health::HealthCheckRequest* req,
                     health::HealthCheckResponse* resp) override {
    resp->set_status(Evaluate(req->service()));
    return grpc::Status::OK;
  }

  grpc::Status Watch(grpc::ServerContext* ctx, const health::HealthCheckRequest* req,
                     grpc::ServerWriter<health::HealthCheckResponse>* writer) override {
    auto slot = streams_.TryTake();
    if (!slot) return streams_.Refusal(ctx->peer());
    bool first = true;
    health::HealthCheckResponse::ServingStatus last = health::HealthCheckResponse::UNKNOWN;
    while (!ctx->IsCancelled() && !stop_->stopped()) {
      auto now = Evaluate(req->service());
      if (first || now != last) {
        health::HealthCheckResponse resp;
        resp.set_status(now);
        if (!writer->Write(resp)) return grpc::Status::OK;
        first = false;
        last = now;
      }
      if (stop_->WaitFor(std::chrono::seconds(1))) break;
    }
    return grpc::Status::OK;
  }

 private:
  health::HealthCheckResponse::ServingStatus Evaluate(const std::string& service) {
    if (stop_->stopped()) return health::HealthCheckResponse::NOT_SERVING;
    if (service == degraded_.service && !degraded_.problem.empty()) {
      spdlog::warn("health check (service '{}'): NOT_SERVING: {}", service, degraded_.problem);
      return health::HealthCheckResponse::NOT_SERVING;
    }
    std::string why;
    if (check_(&why)) {
      LOG_V(5, "health check (service '{}'): SERVING", service);
      return health::HealthCheckResponse::SERVING;
    }
    spdlog::warn("health check: NOT_SERVING: {}", why);
    return health::HealthCheckResponse::NOT_SERVING;
  }

  const LivenessCheck check_;
  const std::shared_ptr<StopSignal> stop_;
  StreamSlots streams_;
  const DegradedState degraded_;
};

// The version-free NodeWatchResources loop: sends the full list on connect, whenever the source's
// generation changes and at least every `resend` (kubelet marks a device Unknown when it is not
// re-reported within its health_check_timeout_seconds, 30 s by default). Polls the source every
// `poll` only while this stream is open.
class HealthStreamCore {
 public:
  // Sends one snapshot; false when the client is gone.
  using Send = std::function<bool(const model::DeviceHealthSnapshot&, int64_t now_unix)>;

  HealthStreamCore(std::shared_ptr<model::DeviceHealthSource> source,
                   std::chrono::milliseconds resend, std::chrono::milliseconds poll,
                   std::shared_ptr<StopSignal> stop, int max_streams)
      : source_(std::move(source)),
        resend_(resend),
        poll_(std::max(poll, std::chrono::milliseconds(10))),
        stop_(std::move(stop)),
        streams_("DRAResourceHealth/NodeWatchResources (v1 and v1alpha1)", max_streams) {}

  grpc::Status Serve(grpc::ServerContext* ctx, std::string_view version, const Send& send) {
    auto slot = streams_.TryTake();
    if (!slot) return streams_.Refusal(ctx->peer());
    spdlog::info("NodeWatchResources ({}): stream opened by {}", version, ctx->peer());
    bool first = true;
    uint64_t last_generation = 0;
    auto last_sent = std::chrono::steady_clock::now();
    while (!ctx->IsCancelled()) {
      if (stop_->stopped()) {
        return {grpc::StatusCode::UNAVAILABLE, "DRA plugin is shutting down"};
      }
      const auto now = std::chrono::steady_clock::now();
      model::DeviceHealthSnapshot snap = source_->Snapshot();
      if (first || snap.generation != last_generation || now - last_sent >= resend_) {
        const int64_t now_unix = std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
        if (!send(snap, now_unix)) break;
        first = false;
        last_generation = snap.generation;
        last_sent = now;
      }
      if (stop_->WaitFor(poll_)) continue;  // loop re-checks and returns UNAVAILABLE
    }
    spdlog::info("NodeWatchResources ({}): stream to {} closed", version, ctx->peer());
    return grpc::Status::OK;
  }

 private:
  const std::shared_ptr<model::DeviceHealthSource> source_;
  const std::chrono::milliseconds resend_;
  const std::chrono::milliseconds poll_;
  const std::shared_ptr<StopSignal> stop_;
  StreamSlots streams_;  // shared by both versions: the cap is on server threads in total
};

// Kubelet truncates longer messages (to 1021 bytes + "...").
constexpr size_t kMaxHealthMessage = 1024;

// Fills one version's NodeWatchResourcesResponse; both versions have the same fields.
template <typename Response, typename Status>
Response ToWire(const model::DeviceHealthSnapshot& snap, int64_t now_unix) {
  Response msg;
  for (const model::DeviceHealth& d : snap.devices) {
    auto* out = msg.add_devices();
    out->mutable_device()->set_pool_name(d.pool);
    out->mutable_device()->set_device_name(d.device);
    Status health = static_cast<Status>(0);  // UNKNOWN in both versions
    if (d.health == model::DeviceHealthStatus::kHealthy) health = static_cast<Status>(1);
    if (d.health == model::DeviceHealthStatus::kUnhealthy) health = static_cast<Status>(2);
    out->set_health(health);
    out->set_last_updated_time(d.last_updated_unix > 0 ? d.last_updated_unix : now_unix);
    out->set_health_check_timeout_seconds(d.health_check_timeout_seconds);
    out->set_message(d.message.substr(0, kMaxHealthMessage));
  }
  return msg;
}

// The thin per-version adapter: the wire types of one dra-health version over the shared core.
template <typename Service, typename Request, typename Response, typename Status>
class ResourceHealthAdapter final : public Service {
 public:
  ResourceHealthAdapter(std::shared_ptr<HealthStreamCore> core, std::string version)
      : core_(std::move(core)), version_(std::move(version)) {}

  grpc::Status NodeWatchResources(grpc::ServerContext* ctx, const Request*,
                                  grpc::ServerWriter<Response>* writer) override {
    return core_->Serve(ctx, version_, [&](const model::DeviceHealthSnapshot& snap, int64_t now) {
      Response msg = ToWire<Response, Status>(snap, now);
      LOG_V(6, "NodeWatchResources {} send (generation {}): {}", version_, snap.generation,
            msg.ShortDebugString());
      return writer->Write(msg);
    });
  }

 private:
  const std::shared_ptr<HealthStreamCore> core_;
  const std::string version_;
};

using ResourceHealthV1 =
    ResourceHealthAdapter<::v1::DRAResourceHealth::Service, ::v1::NodeWatchResourcesRequest,
                          ::v1::NodeWatchResourcesResponse, ::v1::HealthStatus>;
using ResourceHealthV1alpha1 =
    ResourceHealthAdapter<::v1alpha1::DRAResourceHealth::Service,
                          ::v1alpha1::NodeWatchResourcesRequest,
                          ::v1alpha1::NodeWatchResourcesResponse, ::v1alpha1::HealthStatus>;
static_assert(::v1::UNHEALTHY == 2 && ::v1alpha1::UNHEALTHY == 2 && ::v1::HEALTHY == 1 &&
              ::v1alpha1::HEALTHY == 1 && ::v1::UNKNOWN == 0 && ::v1alpha1::UNKNOWN == 0);

}  // namespace

std::unique_ptr<grpc::Service> MakeGrpcHealthService(LivenessCheck check,
                                                     std::shared_ptr<StopSignal> stop,
                                                     int max_streams, DegradedState degraded) {
  return std::make_unique<GrpcHealthService>(std::move(check), std::move(stop), max_streams,
                                             std::move(degraded));
}

std::vector<std::unique_ptr<grpc::Service>> MakeResourceHealthServices(
    std::shared_ptr<model::DeviceHealthSource> source, std::chrono::milliseconds resend,
    std::chrono::milliseconds poll, std::shared_ptr<StopSignal> stop, int max_streams) {
  auto core = std::make_shared<HealthStreamCore>(std::move(source), resend, poll, std::move(stop),
                                                 max_streams);
  std::vector<std::unique_ptr<grpc::Service>> out;
  out.push_back(std::make_unique<ResourceHealthV1>(core, "v1"));
  out.push_back(std::make_unique<ResourceHealthV1alpha1>(core, "v1alpha1"));
  return out;
}

}  // namespace accel_dra::kubelet
