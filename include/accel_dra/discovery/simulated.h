#pragma once
// Simulated devices: realistic accelerators for nodes without hardware (demos, tests, CI).
// Every simulated device says so (vendor "simulated"). Names, UUIDs and PCI addresses are
// deterministic for a given node name and profile, so restarts publish identical slices.
// Every simulated device has a PCI address (one bus per device, one root complex per NUMA node)
// and a NUMA node (round-robin over the group's numaNodes), published as pciBusID and numaNode
// and under the standard names resource.kubernetes.io/pciBusID, .../numaNode, .../pcieRoot.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "accel_dra/common/env.h"
#include "accel_dra/discovery/backend.h"
#include "accel_dra/model/device.h"

namespace accel_dra::discovery {

// One group of identical simulated devices.
struct SimDeviceGroup {
  int count = 0;
  std::string type = "gpu";
  std::string product_name = "Simulated Accelerator 80GB";
  std::string memory = "80Gi";
  std::string driver_version = "1.0.0";
  bool driver_version_set = false;  // driverVersion was given (it then beats driverVersionFile)
  int numa_nodes = 2;               // devices are spread round-robin over this many NUMA nodes
  // Host device node pattern; "{index}" is replaced by the device index. Empty: no device node.
  std::string device_node;
  // How TimeSlicing is applied to these devices (TimeSliceControl): none (advisory) or
  // nvidia-smi (a stand-in nvidia-smi on the plugin's PATH records the calls).
  model::TimeSliceControl timeslice_control = model::TimeSliceControl::kNone;
  // The runtime API version published as runtimeVersion (a version, like driverVersion).
  std::string runtime_version = "1.0.0";
  // The vendor whose driver stack (discovery/driver_stack.h, under --driver-root) containers of
  // these devices get, matched to driverVersion: "" = none, or nvidia, amd, intel, habana.
  std::string driver_stack;
};

struct SimProfile {
  std::vector<SimDeviceGroup> groups;
  // Host file holding the simulated driver's version string (the analogue of
  // /sys/module/<module>/version). When set, devices without an explicit driverVersion publish
  // its content (trimmed and normalised like a real driver's version; an unreadable or
  // unparsable file: no driverVersion, logged once per content), and every device mounts the
  // file read-only at model::kDriverVersionContainerPath in the containers that get it.
  std::string driver_version_file;
};

// A profile of `count` default devices.
SimProfile DefaultSimProfile(int count);
// Parses a YAML profile:
//   devices:
//   - count: 4
//     type: gpu
//     productName: Simulated Accelerator 80GB
//     memory: 80Gi
//     driverVersion: 1.2.3    # any version: the policy of discovery/version.h applies
//     numaNodes: 2
//     deviceNode: /dev/accel-sim{index}
//     timeSliceControl: none | nvidia-smi
//     runtimeVersion: 12.8.0  # runtime API version (default 1.0.0)
//     driverStack: nvidia     # optional: none | nvidia | amd | intel | habana
//   driverVersionFile: /run/accel-sim/version      # optional, absolute
// Unknown keys and bad values are errors that name the file, the key and what is accepted.
Expected<SimProfile> ParseSimProfile(const std::string& yaml, const std::string& source);

class SimulatedBackend : public Backend {
 public:
  // With a profile file, the file is re-read when it changes (MaybeChanged); a file that becomes
  // invalid keeps the last good profile and logs the error once per change. MaybeChanged also
  // reports a change of the profile's driverVersionFile content.
  SimulatedBackend(Env* env, std::string node_name, SimProfile profile,
                   std::filesystem::path profile_file = {});
  std::string Name() const override { return "simulated"; }
  Expected<std::vector<model::Device>> Discover() override;
  bool MaybeChanged() override;

 private:
  Env* env_;
  std::string node_name_;
  SimProfile profile_;
  std::filesystem::path profile_file_;
  std::string last_file_content_;
  // The driverVersionFile content Discover() last used (nullopt: unreadable or not read yet).
  std::optional<std::string> last_version_content_;
  bool version_read_ = false;
};

}  // namespace accel_dra::discovery
