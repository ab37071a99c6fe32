// Fuzz target: the simulation profile (src/discovery/simulated.cc ParseSimProfile).
//
// Input: a YAML profile. Promises checked: the parser never crashes or throws; an accepted
// profile's devices (at most 4096 of them, to keep each run short) keep the discovery promises
// (fuzz/device_checks.h). The driverVersionFile is not read (the fuzzer must not read host files).

#include <cstdint>
#include <string>

#include "accel_dra/common/env.h"
#include "accel_dra/discovery/simulated.h"
#include "device_checks.h"
#include "fuzz_support.h"

namespace discovery = accel_dra::discovery;
using accel_dra::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string yaml(reinterpret_cast<const char*>(data), size);
  auto profile = discovery::ParseSimProfile(yaml, "fuzz.yaml");
  if (!profile.ok()) {
    Check(profile.status().message().find("fuzz.yaml") != std::string::npos,
          "a profile error does not name the file: " + profile.status().message());
    return 0;
  }
  int64_t total = 0;
  for (const auto& g : profile->groups) {
    Check(g.count >= 0 && g.numa_nodes >= 1, "a group with a bad count or numaNodes was accepted");
    total += g.count;
  }
  if (total > 4096) return 0;
  profile->driver_version_file.clear();
  discovery::SimulatedBackend backend(accel_dra::Env::Default(), "node-a", *profile);
  auto devices = backend.Discover();
  Check(devices.ok(), "Discover failed on an accepted profile: " + devices.status().ToString());
  Check(static_cast<int64_t>(devices->size()) == total, "Discover did not return every device");
  accel_dra::fuzz::CheckDiscoveredDevices(*devices);
  return 0;
}
