#pragma once
// Device health as the DRA resource-health stream (v1 / v1alpha1 NodeWatchResources) reports it.
// Version-free; the plugin server translates to the wire format.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace accel_dra::model {

enum class DeviceHealthStatus { kUnknown = 0, kHealthy = 1, kUnhealthy = 2 };

struct DeviceHealth {
  std::string pool;
  std::string device;
  DeviceHealthStatus health = DeviceHealthStatus::kUnknown;
  // When the status was last confirmed (Unix seconds). 0 = "now": the server stamps the send time.
  int64_t last_updated_unix = 0;
  // How long kubelet should trust this status before it turns Unknown; <= 0 = kubelet default (30
  // s).
  int64_t health_check_timeout_seconds = 0;
  // A short human reason for the status (e.g. "device node /dev/accel0 is missing"); kubelet shows
  // it in the pod's allocatedResourcesStatus. At most 1024 bytes on the wire.
  std::string message;

  friend bool operator==(const DeviceHealth&, const DeviceHealth&) = default;
};

// The complete device list of this driver with health, plus a generation number that changes
// whenever the list (or any status in it) changes.
struct DeviceHealthSnapshot {
  uint64_t generation = 0;
  std::vector<DeviceHealth> devices;
};

// Source of device health for NodeWatchResources. Thread-safe; Snapshot() is called by every open
// stream (poll period ~250 ms), so it must be cheap (return a copy of the current state, no I/O).
class DeviceHealthSource {
 public:
  virtual ~DeviceHealthSource() = default;
  virtual DeviceHealthSnapshot Snapshot() = 0;
};

}  // namespace accel_dra::model
