#pragma once
// Simulated devices: realistic accelerators for nodes without hardware (demos, tests, CI).
// Every simulated device says so (vendor "simulated"). Names, UUIDs and PCI addresses are
// deterministic for a given node name and profile, so restarts publish identical slices.

#include <filesystem>
#include <string>
#include <vector>

#include "accel_dra/common/env.h"
#include "accel_dra/discovery/device.h"

namespace accel_dra::discovery {

// One group of identical simulated devices.
struct SimDeviceGroup {
  int count = 0;
  std::string type = "gpu";
  std::string product_name = "Simulated Accelerator 80GB";
  std::string memory = "80Gi";
  std::string driver_version = "1.0.0";
  int numa_nodes = 2;  // devices are spread round-robin over this many NUMA nodes
  // Host device node pattern; "{index}" is replaced by the device index. Empty: no device node.
  std::string device_node;
};

struct SimProfile {
  std::vector<SimDeviceGroup> groups;
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
// Unknown keys and bad values are errors that name the file, the key and what is accepted.
Expected<SimProfile> ParseSimProfile(const std::string& yaml, const std::string& source);

class SimulatedBackend : public Backend {
 public:
  // With a profile file, the file is re-read when it changes (MaybeChanged); a file that becomes
  // invalid keeps the last good profile and logs the error once per change.
  SimulatedBackend(Env* env, std::string node_name, SimProfile profile,
                   std::filesystem::path profile_file = {});
  std::string Name() const override { return "simulated"; }
  Expected<std::vector<Device>> Discover() override;
  bool MaybeChanged() override;

 private:
  Env* env_;
  std::string node_name_;
  SimProfile profile_;
  std::filesystem::path profile_file_;
  std::string last_file_content_;
};

}  // namespace accel_dra::discovery
