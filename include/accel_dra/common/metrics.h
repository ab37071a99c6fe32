#pragma once
// MetricsRecorder: what the core reports for operators, without depending on a metrics library.
//
// Every layer calls Metrics() (the process's recorder); the `metrics` component implements the
// interface with prometheus-cpp and cmd installs it with SetMetrics() at start. Until then, and
// in tests that install nothing, every call is a no-op. Promises:
//  - Implementations are thread-safe and cheap (no I/O on the caller's thread): they are called
//    on prepare, publish and apiserver paths.
//  - Metrics() never returns null; SetMetrics(nullptr) restores the no-op recorder. The caller of
//    SetMetrics keeps the recorder alive until it installs another one.

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace accel_dra {

enum class ClaimOperation { kPrepare, kUnprepare };

// Published devices counted by (device type, health): type is the `type` attribute ("gpu", ...,
// "unknown" without one); health is "Healthy" or the problem ("DeviceNodeMissing", ...).
using DeviceCounts = std::map<std::pair<std::string, std::string>, int>;

class MetricsRecorder {
 public:
  virtual ~MetricsRecorder() = default;

  // One claim prepared or unprepared. `error_reason` is empty on success, else a short stable
  // reason (model::ClaimErrorReason: "claim_not_found", "invalid_config", ...).
  virtual void ClaimOperationDone(ClaimOperation op, std::string_view error_reason,
                                  double seconds) {
    (void)op, (void)error_reason, (void)seconds;
  }
  // The devices handed to the slice publisher (replaces the previous counts).
  virtual void DevicesPublished(const DeviceCounts& counts) { (void)counts; }
  // One ResourceSlice write: operation "create", "update" or "delete".
  virtual void SliceWrite(std::string_view operation, bool ok) { (void)operation, (void)ok; }
  // One checkpoint file write (serialise excluded; temp file, fsync, rename included).
  virtual void CheckpointWrite(double seconds, bool ok) { (void)seconds, (void)ok; }
  // One apiserver request attempt (watches excluded): HTTP method, HTTP status (0: no answer).
  virtual void ApiRequest(std::string_view verb, int code, double seconds) {
    (void)verb, (void)code, (void)seconds;
  }
  // Readiness inputs: kubelet accepted the registration / the first ResourceSlices are
  // published.
  virtual void KubeletRegistered(bool registered) { (void)registered; }
  virtual void SlicesPublished() {}
};

// The process's recorder (a no-op recorder until SetMetrics()).
MetricsRecorder& Metrics();
void SetMetrics(MetricsRecorder* recorder);

// Seconds since `start` (a steady_clock time point), for the duration arguments above.
double SecondsSince(std::chrono::steady_clock::time_point start);

}  // namespace accel_dra
