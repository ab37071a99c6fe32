// Intel's driver stack (driver_stack.h, docs/driver-stack.md): the compute runtime (Level Zero,
// OpenCL) stays in the image and the device's /dev/dri nodes come from discovery, so nothing is
// injected; the runtime API version (runtimeVersion) is the version of the host's Level Zero
// loader (libze_loader.so.<version>) under the driver root, where it is installed.

#include <string>

#include "accel_dra/discovery/driver_stack.h"

namespace accel_dra::discovery {
namespace {

class IntelDriverStack : public DriverStackSource {
 public:
  explicit IntelDriverStack(DriverRoot root) : root_(std::move(root)) {}

  Expected<DriverStack> Find(const std::string& /*driver_version*/) override {
    DriverStack stack;
    stack.runtime_version = FindLibraryVersion(root_, "libze_loader.so");
    return stack;
  }

 private:
  DriverRoot root_;
};

}  // namespace

std::unique_ptr<DriverStackSource> MakeIntelDriverStack(const DriverRoot& root) {
  return std::make_unique<IntelDriverStack>(root);
}

}  // namespace accel_dra::discovery
