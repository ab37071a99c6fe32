#pragma once
// DeviceHealthTracker: the health of the published devices, for the kubelet's DRA resource-health
// stream (model::DeviceHealthSource → v1alpha1 NodeWatchResources) and for device taints.
//
// Promises:
// - Update() checks every device of an inventory now, under the HostRoot through the Env:
//     * every device node the device has had (seen existing; remembered across updates, keyed by
//       PCI bus ID or name) must exist: DeviceNodeMissing "device node /dev/nvidia3 is missing";
//     * a PCI device that was bound to a kernel driver must still be: DriverUnbound;
//     * with NVML usable, an NVIDIA GPU bound to the nvidia driver must be among the GPUs NVML
//       lists (NVML leaves out a GPU whose handle it cannot get, e.g. a GPU that fell off the
//       bus): NvmlError "NVML cannot use this GPU (...)".
//   Anything else is healthy — a simulated device is healthy unless its device node is missing.
// - Devices that a failing discovery backend kept from its last good scan (HealthContext::stale)
//   are Unknown and not checked (what discovery cannot read, the checks cannot judge either: an
//   unlistable /sys/bus/pci/devices would look like unbound drivers); what the tracker remembers
//   about them is kept.
// - Devices held by prepared claims that vanished or changed identity (HealthContext::held) are
//   Unhealthy with the problem given, also when they are no longer in the inventory
//   (DeviceVanished) — a held device is never silently dropped from the stream.
// - Other devices no longer in the inventory are dropped (and forgotten). The generation changes
//   exactly when the device list or any status/reason changes.
// - Snapshot() and Unhealthy() are cheap copies (no I/O) and thread-safe; Update() is meant for
//   one thread (the discovery loop) but may run concurrently with readers.
// Limitation: a node that was already missing when a device was first seen is not known to be
// missing (discovery only reports nodes that exist).

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "accel_dra/common/env.h"
#include "accel_dra/discovery/nvml.h"
#include "accel_dra/model/device.h"
#include "accel_dra/model/health.h"

namespace accel_dra::discovery {

// Why a device is unhealthy: `reason` is a short code usable as a taint value
// (DeviceNodeMissing, DriverUnbound, NvmlError); `message` says what exactly.
struct HealthProblem {
  std::string reason;
  std::string message;
  bool operator==(const HealthProblem&) const = default;
};

// The taint put on unhealthy devices (--device-taints): key accel-dra.dev/unhealthy (the driver
// name as domain), value the reason code, effect `effect` (--device-taint-effect: NoSchedule,
// NoExecute or None).
model::DeviceTaint UnhealthyTaint(const std::string& driver_name, const HealthProblem& problem,
                                  const std::string& effect = "NoSchedule");
// A copy of `inventory` with that taint on every device in `unhealthy` (the same snapshot when
// `unhealthy` is empty).
model::InventoryPtr WithUnhealthyTaints(const model::InventoryPtr& inventory,
                                        const std::map<std::string, HealthProblem>& unhealthy,
                                        const std::string& driver_name,
                                        const std::string& effect = "NoSchedule");

// What the discovery loop knows about the devices besides the inventory.
struct HealthContext {
  // What NVML reported at the last discovery; nullptr when NVML is not in use or not usable
  // (then no NVML check is made).
  const NvmlInfo* nvml = nullptr;
  // Devices kept from the last good scan of a failing backend (DeviceManager::stale()).
  std::set<std::string> stale;
  // Devices held by prepared claims that vanished (reason DeviceVanished) or are another
  // physical device now (DeviceChanged), by the name the claims hold them under.
  std::map<std::string, HealthProblem> held;
};

class DeviceHealthTracker : public model::DeviceHealthSource {
 public:
  DeviceHealthTracker(Env* env, HostRoot root, std::string pool);

  // Re-checks all devices.
  void Update(const model::Inventory& inventory, const HealthContext& context);
  void Update(const model::Inventory& inventory, const NvmlInfo* nvml = nullptr) {
    Update(inventory, HealthContext{nvml, {}, {}});
  }

  model::DeviceHealthSnapshot Snapshot() override;
  // Unhealthy devices of the last Update: device name → problem (Unknown ones are not in it).
  std::map<std::string, HealthProblem> Unhealthy() const;
  uint64_t generation() const;

 private:
  struct Memory {
    std::set<std::string> nodes;  // every device node seen for this device
    std::string driver;           // the last kernel driver seen bound ("" = never)
  };
  HealthProblem Check(const model::Device& d, const std::string& key, const NvmlInfo* nvml);

  Env* env_;
  HostRoot root_;
  std::string pool_;
  std::map<std::string, Memory> memory_;  // only touched by Update()

  mutable std::mutex mu_;
  uint64_t generation_ = 0;
  std::vector<std::string> names_;  // sorted device names of the last Update
  std::map<std::string, HealthProblem> unhealthy_;
  std::set<std::string> unknown_;
};

}  // namespace accel_dra::discovery
