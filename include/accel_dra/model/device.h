#pragma once
// The device model: what discovery finds, what the publisher turns into ResourceSlices and what
// the claims core prepares. A Device is plain data; an Inventory is an immutable, sorted snapshot
// of a node's devices that is replaced whole when anything changes (readers never see a
// half-updated set).

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/common/status.h"

namespace accel_dra::model {

// One DRA device attribute value: exactly one of int, bool, string, version (strict semver).
// A string value is always UTF-8: String() replaces bytes that are not by U+FFFD (and then cuts
// the value to kMaxAttributeValueLength), so a slice body can always be sent.
class AttrValue {
 public:
  enum class Type { kInt, kBool, kString, kVersion };
  static AttrValue Int(int64_t v);
  static AttrValue Bool(bool v);
  static AttrValue String(std::string v);
  static AttrValue Version(std::string v);

  Type type() const { return type_; }
  int64_t int_value() const { return int_; }
  bool bool_value() const { return int_ != 0; }
  const std::string& string_value() const { return str_; }  // string and version
  // The ResourceSlice wire form: {"int": 1} / {"bool": true} / {"string": "x"} / {"version":
  // "1.2.3"}.
  nlohmann::json ToJson() const;
  bool operator==(const AttrValue& o) const = default;

 private:
  AttrValue(Type t, int64_t i, std::string s) : type_(t), int_(i), str_(std::move(s)) {}
  Type type_ = Type::kInt;
  int64_t int_ = 0;
  std::string str_;
};

// A host file the container of a claim holding the device gets read-only (e.g. the version file
// of the device's driver), at `container_path`.
struct FileMount {
  std::string host_path;
  std::string container_path;
  auto operator<=>(const FileMount& o) const = default;
  bool operator==(const FileMount& o) const = default;
};

// How the device's time-slice interval (DeviceConfig TimeSlicing) can be applied.
enum class TimeSliceControl {
  kNone,       // not controllable: the setting is advisory
  kNvidiaSmi,  // `nvidia-smi compute-policy -i <id> --set-timeslice <0..3>`
};

// A device taint (resource.k8s.io DeviceTaint): set by the plugin on unhealthy devices when
// --device-taints is on. key: qualified name; value: label value; effect: NoSchedule or NoExecute.
struct DeviceTaint {
  std::string key;
  std::string value;
  std::string effect;
  bool operator==(const DeviceTaint& o) const = default;
};

// What makes a device the physical device it is, whatever it is called. Discovery fills in what
// it knows; a prepared claim records it, so that a device that changed or vanished while held is
// noticed and one physical device is never given to two claims under two names. Empty fields are
// unknown (not a PCI device, NVML not usable, a record written before identities were recorded).
struct DeviceIdentity {
  std::string pci_bus_id;  // normalised: "0000:3b:00.0" (lower case; domain 4 hex digits, up to 8)
  std::string uuid;        // NVML's "GPU-..." or a simulated device's UUID
  bool empty() const { return pci_bus_id.empty() && uuid.empty(); }
  bool operator==(const DeviceIdentity&) const = default;
};

struct Device {
  // DNS label, unique on the node; stable across restarts, rescans and reboots for the same
  // physical device (PCI devices: derived from the PCI address, see discovery/pci.h).
  std::string name;
  DeviceIdentity identity;
  // Attribute names are unqualified (the driver's domain) or "<domain>/<name>".
  std::map<std::string, AttrValue> attributes;
  // Capacity name → Kubernetes quantity in canonical form (e.g. "80Gi").
  std::map<std::string, std::string> capacity;
  // Host device nodes that give access to this device (absolute paths as the runtime sees them).
  std::vector<std::string> device_nodes;
  // Host files bound read-only into containers that get the device.
  std::vector<FileMount> read_only_mounts;
  // How a TimeSlicing interval is applied, and the identifier the tool takes (`-i`: the UUID,
  // else the PCI bus ID).
  TimeSliceControl timeslice_control = TimeSliceControl::kNone;
  std::string timeslice_target;
  // Published in the slice; not counted against the 32 attributes+capacities.
  std::vector<DeviceTaint> taints;
  // The vendor whose driver stack (discovery/driver_stack.h) the containers of the device get:
  // "" = the `vendor` attribute's (a simulated profile's `driverStack` sets it).
  std::string stack_vendor;
  // Why the device's driver stack cannot be given to a container (missing or another version
  // than the driver's); "" = nothing is wrong. Prepare refuses the device with this message.
  std::string driver_stack_problem;
  bool operator==(const Device& o) const = default;
};

// A sorted (by name), immutable snapshot.
class Inventory {
 public:
  Inventory() = default;
  explicit Inventory(std::vector<Device> devices);
  const std::vector<Device>& devices() const { return devices_; }
  const Device* Find(const std::string& name) const;
  // Device nodes that two or more devices list (e.g. a simulated profile's one node for all):
  // like the shared control nodes (IsSharedControlNode), they identify no single device.
  const std::set<std::string>& shared_device_nodes() const { return shared_nodes_; }
  bool operator==(const Inventory& o) const = default;

 private:
  std::vector<Device> devices_;
  std::set<std::string> shared_nodes_;
};

// Device nodes that all devices of a driver share (control and unified-memory nodes):
// /dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools, /dev/nvidia-modeset, /dev/nvidia-caps/*
// (NVIDIA), /dev/kfd (AMD). They say nothing about which physical device a claim holds.
bool IsSharedControlNode(std::string_view path);

// Why two devices are one physical device: "PCI bus ID 0000:3b:00.0", "UUID GPU-...", "device
// node /dev/nvidia3" (a node that is neither a shared control node nor in `shared_nodes`); ""
// when nothing overlaps. Unknown (empty) identity fields match nothing.
std::string PhysicalOverlap(const DeviceIdentity& a, const std::vector<std::string>& a_nodes,
                            const DeviceIdentity& b, const std::vector<std::string>& b_nodes,
                            const std::set<std::string>& shared_nodes);
// How `now` contradicts `was` (both known and different: "PCI bus ID 0000:3b:00.0, was
// 0000:3c:00.0"); "" when nothing known contradicts.
std::string IdentityChange(const DeviceIdentity& was, const DeviceIdentity& now);
using InventoryPtr = std::shared_ptr<const Inventory>;

// Where the containers of a claim see the files the driver gives them (read-only bind mounts):
// the inspect tool (plugin flag --inspect-tool) and the version file of a device's driver
// (simulated profiles' driverVersionFile; the analogue of /sys/module/<module>/version).
inline constexpr std::string_view kInspectToolContainerPath = "/usr/local/bin/accel-dra-inspect";
inline constexpr std::string_view kDriverVersionContainerPath = "/run/accel-dra/driver/version";
// The published driverVersion and runtimeVersion of a claim's device, one value per file (what
// the claims core writes and mounts; see docs/driver-stack.md), and the stand-in vendor tool
// (--smi-tool) that prints them.
inline constexpr std::string_view kDriverInfoContainerDir = "/run/accel-dra/driver";
inline constexpr std::string_view kDriverVersionFileName = "driver-version";
inline constexpr std::string_view kRuntimeVersionFileName = "runtime-version";
inline constexpr std::string_view kSmiToolContainerPath = "/usr/local/bin/accel-dra-smi";

// The standard attributes of the Kubernetes DRA library (k8s.io/dynamic-resource-allocation
// deviceattribute): every driver may publish them, so claims can align devices of different
// drivers (an accelerator and a NIC) by the same names. pcieRoot is "pci<domain>:<bus>",
// pciBusID the extended BDF "dddd:bb:dd.f", numaNode the int from sysfs numa_node (left out when
// it is -1). Our own pciBusID and numaNode attributes (driver domain) carry the same values.
inline constexpr std::string_view kStdPcieRootAttribute = "resource.kubernetes.io/pcieRoot";
inline constexpr std::string_view kStdPciBusIdAttribute = "resource.kubernetes.io/pciBusID";
inline constexpr std::string_view kStdNumaNodeAttribute = "resource.kubernetes.io/numaNode";

// The longest string or version attribute value the apiserver accepts.
inline constexpr size_t kMaxAttributeValueLength = 64;
// Cuts a string (e.g. a product name) to at most `max` bytes without splitting a UTF-8 sequence,
// preferring a word boundary, and without a dangling opening bracket or trailing punctuation.
std::string TruncateAttributeString(std::string_view s, size_t max = kMaxAttributeValueLength);

// Canonical Kubernetes quantity for a byte count with binary suffixes ("80Gi", "1536Mi"); the
// apiserver normalises quantities to this form, so publishing it avoids needless updates.
std::string CanonicalBinaryQuantity(uint64_t bytes);
// Parses "80Gi", "512Mi", "1G", "1000" into bytes. InvalidArgument on anything else.
Expected<uint64_t> ParseQuantityBytes(const std::string& q);

}  // namespace accel_dra::model
