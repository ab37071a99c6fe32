// Fuzz target: PCI/sysfs discovery (src/discovery/pci.cc) on generated host trees.
//
// Input: a host tree (records, see host_tree.h) served through the Env seam under a fake root;
// the seeds are the fixture hosts. Promises checked (discovery/pci.h): bad input never throws or
// crashes, Discover() succeeds whenever the PCI device directory can be listed, and the devices
// keep the discovery promises (fuzz/device_checks.h).

#include <cstdint>
#include <string>
#include <string_view>

#include "accel_dra/discovery/pci.h"
#include "device_checks.h"
#include "fuzz_support.h"
#include "host_tree.h"

namespace discovery = accel_dra::discovery;
using accel_dra::fuzz::Check;

namespace {

constexpr const char* kRoot = "/accel-dra-fuzz-host";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  accel_dra::fuzz::HostTreeEnv env(kRoot);
  env.Load(std::string_view(reinterpret_cast<const char*>(data), size));
  discovery::PciOptions options;
  options.ids_file = ACCEL_DRA_FUZZ_PCI_IDS;
  discovery::PciBackend backend(&env, accel_dra::HostRoot(kRoot), options);
  auto devices = backend.Discover();
  const bool listable = env.ListDir(std::string(kRoot) + "/sys/bus/pci/devices").ok();
  Check(devices.ok() == listable,
        "Discover() " + std::string(devices.ok() ? "succeeded" : "failed: ") +
            (devices.ok() ? "" : devices.status().ToString()) + " though the devices directory " +
            (listable ? "can" : "cannot") + " be listed");
  if (devices.ok()) accel_dra::fuzz::CheckDiscoveredDevices(*devices);
  return 0;
}
