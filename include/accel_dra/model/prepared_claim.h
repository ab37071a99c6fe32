#pragma once
// What the driver prepared for a ResourceClaim on this node, typed, end to end: the claims core
// builds these records, the checkpoint stores them (its codec is the only place they become
// JSON), the CDI builder renders a claim's spec from them, and the kubelet adapters send the
// wire part of each device back to kubelet.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/model/device.h"
#include "accel_dra/model/sharing.h"

namespace accel_dra::model {

// The time slice the driver set on a device for a TimeSlicing claim. With control kNone the
// interval is advisory (nothing was set; containers see ..._TIMESLICE_ENFORCED=false).
struct AppliedTimeSlice {
  TimeSliceControl control = TimeSliceControl::kNone;
  std::string target;  // the identifier the tool takes (`nvidia-smi -i`); empty with kNone
  int setting = 0;     // TimeSliceSetting(interval): 0..3
  bool operator==(const AppliedTimeSlice&) const = default;
};

// One device prepared for a claim: the answer to kubelet and the checkpoint record in one.
struct PreparedDevice {
  // ---- What kubelet is told (the DRA wire fields) ----
  // Top-level request names (no "/subrequest" suffix) this device serves; empty = all requests.
  std::vector<std::string> request_names;
  std::string pool;
  std::string device;
  // Fully qualified CDI device IDs ("vendor/class=name").
  std::vector<std::string> cdi_device_ids;
  // Set for a share of a multi-allocatable device (consumable capacity). Only the v1 wire API can
  // carry it; the v1beta1 adapter drops it.
  std::optional<std::string> share_id;

  // ---- What the driver keeps to undo or re-create the preparation without the claim ----
  SharingSettings sharing;
  // The allocation result asked for admin access (the device may be held by other claims too).
  bool admin_access = false;
  // Set with TimeSlicing: how the interval was applied (or that it is advisory). Recorded before
  // it is applied, so that a crash is followed by a reset.
  std::optional<AppliedTimeSlice> time_slice;
  // Host device nodes and read-only file mounts the claim's CDI spec gives the container, as the
  // device had them when prepared. nullopt: not recorded (format-1 checkpoints written before
  // they were); the current inventory's values are used then.
  std::optional<std::vector<std::string>> device_nodes;
  std::optional<std::vector<FileMount>> mounts;
  // The physical device as discovery knew it when prepared (PCI bus ID, UUID), so that a device
  // that changed or vanished is noticed and never given to a second claim under another name.
  // Fields are empty when unknown (also in records written before identities were recorded; the
  // device nodes then stand for the identity).
  DeviceIdentity identity;

  // The time slice was set on the hardware (not advisory).
  bool TimeSliceEnforced() const {
    return time_slice.has_value() && time_slice->control != TimeSliceControl::kNone;
  }
  friend bool operator==(const PreparedDevice&, const PreparedDevice&) = default;
};

enum class ClaimState {
  kPrepareStarted,    // prepare began; side effects may be partial and must be rolled back/redone
  kPrepareCompleted,  // prepare finished; `devices` is what kubelet was (or will be) told
};
// "PrepareStarted" / "PrepareCompleted" (also the checkpoint's spelling).
std::string_view ClaimStateName(ClaimState state);

// One claim this plugin prepared (or began to prepare) on this node.
struct PreparedClaim {
  std::string ns;  // namespace and name let a garbage collector look the claim up later
  std::string name;
  ClaimState state = ClaimState::kPrepareStarted;
  std::vector<PreparedDevice> devices;
  // File name (not path) of the claim's CDI spec in the CDI root; empty when none was written.
  std::string cdi_spec_file;
  // The checkpoint keeps millisecond precision.
  std::chrono::system_clock::time_point prepare_started_at{};
  std::optional<std::chrono::system_clock::time_point> prepare_completed_at;

  friend bool operator==(const PreparedClaim&, const PreparedClaim&) = default;
};

// ---- Held devices: what prepared claims hold, checked against what discovery finds now ----

// One device a prepared (PrepareCompleted) claim holds.
struct HeldDevice {
  std::string claim;  // "<namespace>/<name>"
  std::string claim_uid;
  PreparedDevice record;
};
// The devices held now; the claims core's state (the checkpoint) behind a model-level seam, so
// that the node's loop can check them without depending on the claims core. Thread-safe.
using HeldDevicesSource = std::function<std::vector<HeldDevice>()>;
// The held devices of `claims` (by claim UID; PrepareStarted claims hold nothing yet).
std::vector<HeldDevice> HeldDevicesOf(
    const std::map<std::string, PreparedClaim, std::less<>>& claims);

enum class HeldDeviceState {
  kPresent,   // published under the recorded name, nothing known contradicts the identity
  kRenamed,   // not under the recorded name, but the same physical device is published under
              // another (e.g. a claim prepared before names were derived from PCI addresses)
  kChanged,   // the recorded name now names another physical device (other bus ID or UUID)
  kVanished,  // the physical device is not published at all
};
struct HeldDeviceCheck {
  HeldDeviceState state = HeldDeviceState::kPresent;
  std::string current_name;  // kPresent, kRenamed: the device's name now
  std::string message;       // what happened, naming the device ("" with kPresent)
};
// Where `held` is in `inventory`: by its recorded name, then by physical identity (bus ID, UUID,
// a device node that identifies one device; see PhysicalOverlap). A record without identity
// (older checkpoints) is taken as present when its name is published.
HeldDeviceCheck CheckHeldDevice(const PreparedDevice& held, const Inventory& inventory);

}  // namespace accel_dra::model
