#pragma once
// Health-related gRPC services of the plugin (internal to accel_dra_plugin):
//  * grpc.health.v1.Health  - liveness: SERVING iff `check` passes at call time (any service name).
//  * v1alpha1.DRAResourceHealth - NodeWatchResources: streams the full device health list from a
//    DeviceHealthSource on connect, whenever its generation changes and at least every `resend`.
// Streaming handlers end promptly once the shared StopSignal fires or the client goes away.

#include <grpcpp/impl/service_type.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "accel_dra/model/health.h"

namespace accel_dra::kubelet {

// A one-shot stop flag that threads can sleep on.
class StopSignal {
 public:
  void Stop();
  bool stopped() const;
  // Sleeps up to `d`; returns true if stopped (now or while waiting).
  bool WaitFor(std::chrono::milliseconds d);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
};

// Returns true when healthy; otherwise false and a reason in *why.
using LivenessCheck = std::function<bool(std::string* why)>;

std::unique_ptr<grpc::Service> MakeGrpcHealthService(LivenessCheck check,
                                                     std::shared_ptr<StopSignal> stop);

std::unique_ptr<grpc::Service> MakeResourceHealthService(
    std::shared_ptr<model::DeviceHealthSource> source, std::chrono::milliseconds resend,
    std::chrono::milliseconds poll, std::shared_ptr<StopSignal> stop);

}  // namespace accel_dra::kubelet
