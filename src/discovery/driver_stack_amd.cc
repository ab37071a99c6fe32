// AMD's driver stack (driver_stack.h, docs/driver-stack.md): the ROCm user space stays in the
// image; the container gets /dev/kfd (the compute interface every ROCm program opens; the
// device's own render node comes from discovery) and the host's ROCm version file, whose version
// is the runtime API version (runtimeVersion).

#include <string>

#include "accel_dra/common/strings.h"
#include "accel_dra/discovery/driver_stack.h"

namespace accel_dra::discovery {
namespace {

constexpr const char* kRocmVersionFile = "/opt/rocm/.info/version";

class AmdDriverStack : public DriverStackSource {
 public:
  explicit AmdDriverStack(DriverRoot root) : root_(std::move(root)) {}

  Expected<DriverStack> Find(const std::string& /*driver_version*/) override {
    DriverStack stack;
    if (!AddDeviceNodeIfPresent(root_, "/dev/kfd", stack)) {
      return FailedPrecondition(
          "/dev/kfd is missing: the amdgpu driver's compute interface is "
          "not there (amdgpu loaded without KFD?)");
    }
    auto content = root_.env->ReadFile(root_.ReadPath(kRocmVersionFile));
    if (content.ok()) {
      // "6.2.0-66": the build number after '-' is no part of the API version.
      std::string v(Trim(*content));
      v = v.substr(0, v.find('-'));
      if (!v.empty()) stack.runtime_version = v;
      stack.mounts.push_back({root_.HostPath(kRocmVersionFile), kRocmVersionFile});
    }
    return stack;
  }

 private:
  DriverRoot root_;
};

}  // namespace

std::unique_ptr<DriverStackSource> MakeAmdDriverStack(const DriverRoot& root) {
  return std::make_unique<AmdDriverStack>(root);
}

}  // namespace accel_dra::discovery
