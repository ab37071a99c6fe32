#pragma once
// Health-related gRPC services of the plugin (internal to accel_dra_plugin):
//  * grpc.health.v1.Health  - liveness: SERVING iff `check` passes at call time (any service name).
//  * v1.DRAResourceHealth and v1alpha1.DRAResourceHealth - NodeWatchResources: one version-free
//    core behind a thin adapter per wire version; streams the full device health list (status and
//    message) from a DeviceHealthSource on connect, whenever its generation changes and at least
//    every `resend` (kubelet 1.37 marks a device Unknown when it is not re-reported within 30 s).
//    The source is polled only while a stream is open; with no stream nothing runs.
// Streaming handlers end promptly once the shared StopSignal fires or the client goes away.
// grpc.health.v1 for service `degraded_service` answers NOT_SERVING while `degraded` is not empty
// (logged as the reason), otherwise and for every other service it answers what `check` says.
// Each streaming method serves at most `max_streams` streams at once (every open stream holds a
// server thread); one more is refused with RESOURCE_EXHAUSTED naming the limit. The two
// NodeWatchResources versions count as one method: `max_streams` in total, not per version.

#include <grpcpp/impl/service_type.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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

struct DegradedState {
  std::string service;  // the grpc.health.v1 service name that reports it
  std::string problem;  // "" = not degraded
};

std::unique_ptr<grpc::Service> MakeGrpcHealthService(LivenessCheck check,
                                                     std::shared_ptr<StopSignal> stop,
                                                     int max_streams, DegradedState degraded);

// The NodeWatchResources services: v1 first, then v1alpha1 (they share one stream cap).
std::vector<std::unique_ptr<grpc::Service>> MakeResourceHealthServices(
    std::shared_ptr<model::DeviceHealthSource> source, std::chrono::milliseconds resend,
    std::chrono::milliseconds poll, std::shared_ptr<StopSignal> stop, int max_streams);

}  // namespace accel_dra::kubelet
