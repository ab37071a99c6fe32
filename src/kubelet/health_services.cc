#include "health_services.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <utility>

#include "accel_dra/common/log.h"
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

::v1alpha1::HealthStatus ToWire(model::DeviceHealthStatus s) {
  switch (s) {
    case model::DeviceHealthStatus::kHealthy:
      return ::v1alpha1::HEALTHY;
    case model::DeviceHealthStatus::kUnhealthy:
      return ::v1alpha1::UNHEALTHY;
    case model::DeviceHealthStatus::kUnknown:
      break;
  }
  return ::v1alpha1::UNKNOWN;
}

class ResourceHealthService final : public ::v1alpha1::DRAResourceHealth::Service {
 public:
  ResourceHealthService(std::shared_ptr<model::DeviceHealthSource> source,
                        std::chrono::milliseconds resend, std::chrono::milliseconds poll,
                        std::shared_ptr<StopSignal> stop, int max_streams)
      : source_(std::move(source)),
        resend_(resend),
        poll_(std::max(poll, std::chrono::milliseconds(10))),
        stop_(std::move(stop)),
        streams_("v1alpha1.DRAResourceHealth/NodeWatchResources", max_streams) {}

  grpc::Status NodeWatchResources(
      grpc::ServerContext* ctx, const ::v1alpha1::NodeWatchResourcesRequest*,
      grpc::ServerWriter<::v1alpha1::NodeWatchResourcesResponse>* writer) override {
    auto slot = streams_.TryTake();
    if (!slot) return streams_.Refusal(ctx->peer());
    spdlog::info("NodeWatchResources: stream opened by {}", ctx->peer());
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
        ::v1alpha1::NodeWatchResourcesResponse msg;
        for (const model::DeviceHealth& d : snap.devices) {
          auto* out = msg.add_devices();
          out->mutable_device()->set_pool_name(d.pool);
          out->mutable_device()->set_device_name(d.device);
          out->set_health(ToWire(d.health));
          out->set_last_updated_time(d.last_updated_unix > 0 ? d.last_updated_unix : now_unix);
          out->set_health_check_timeout_seconds(d.health_check_timeout_seconds);
        }
        LOG_V(6, "NodeWatchResources send (generation {}): {}", snap.generation,
              msg.ShortDebugString());
        if (!writer->Write(msg)) break;
        first = false;
        last_generation = snap.generation;
        last_sent = now;
      }
      if (stop_->WaitFor(poll_)) continue;  // loop re-checks and returns UNAVAILABLE
    }
    spdlog::info("NodeWatchResources: stream to {} closed", ctx->peer());
    return grpc::Status::OK;
  }

 private:
  const std::shared_ptr<model::DeviceHealthSource> source_;
  const std::chrono::milliseconds resend_;
  const std::chrono::milliseconds poll_;
  const std::shared_ptr<StopSignal> stop_;
  StreamSlots streams_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeGrpcHealthService(LivenessCheck check,
                                                     std::shared_ptr<StopSignal> stop,
                                                     int max_streams, DegradedState degraded) {
  return std::make_unique<GrpcHealthService>(std::move(check), std::move(stop), max_streams,
                                             std::move(degraded));
}

std::unique_ptr<grpc::Service> MakeResourceHealthService(
    std::shared_ptr<model::DeviceHealthSource> source, std::chrono::milliseconds resend,
    std::chrono::milliseconds poll, std::shared_ptr<StopSignal> stop, int max_streams) {
  return std::make_unique<ResourceHealthService>(std::move(source), resend, poll, std::move(stop),
                                                 max_streams);
}

}  // namespace accel_dra::kubelet
