// NVIDIA's driver stack (driver_stack.h, docs/driver-stack.md): the user-space libraries of the
// kernel driver's exact version at their soname paths, nvidia-smi and the other driver tools, the
// control and unified-memory device nodes, and the GSP firmware of that version. The CUDA driver
// API version (runtimeVersion) comes from NVML (nvml.h), not from here.

#include <string>
#include <vector>

#include "accel_dra/discovery/driver_stack.h"

namespace accel_dra::discovery {
namespace {

// The compute, utility and video libraries the NVIDIA container toolkit injects for
// NVIDIA_DRIVER_CAPABILITIES=compute,utility,video. libcuda and libnvidia-ml are required
// (without them neither CUDA nor nvidia-smi works); the others are added when present.
const std::vector<StackLibrary>& NvidiaLibraries() {
  static const std::vector<StackLibrary> kLibraries = {
      {"libcuda.so", "libcuda.so.1", true},
      {"libnvidia-ml.so", "libnvidia-ml.so.1", true},
      {"libnvidia-ptxjitcompiler.so", "libnvidia-ptxjitcompiler.so.1", false},
      {"libnvidia-nvvm.so", "libnvidia-nvvm.so.4", false},
      {"libnvidia-gpucomp.so", "", false},  // its soname is the versioned name
      {"libcudadebugger.so", "libcudadebugger.so.1", false},
      {"libnvidia-opencl.so", "libnvidia-opencl.so.1", false},
      {"libnvidia-cfg.so", "libnvidia-cfg.so.1", false},
      {"libnvidia-allocator.so", "libnvidia-allocator.so.1", false},
      {"libnvidia-encode.so", "libnvidia-encode.so.1", false},
      {"libnvcuvid.so", "libnvcuvid.so.1", false},
      {"libnvidia-opticalflow.so", "libnvidia-opticalflow.so.1", false},
  };
  return kLibraries;
}

class NvidiaDriverStack : public DriverStackSource {
 public:
  explicit NvidiaDriverStack(DriverRoot root) : root_(std::move(root)) {}

  Expected<DriverStack> Find(const std::string& driver_version) override {
    if (driver_version.empty()) {
      return FailedPrecondition(
          "NVIDIA driver version unknown (neither NVML nor /sys/module/nvidia/version says): the "
          "user-space libraries cannot be matched to it");
    }
    DriverStack stack;
    RETURN_IF_ERROR(AddLibraries(root_, NvidiaLibraries(), driver_version, stack));
    RETURN_IF_ERROR(AddBinaries(stack));
    for (const char* node : {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}) {
      AddDeviceNodeIfPresent(root_, node, stack);
    }
    // GSP firmware: the driver loads it from /lib/firmware/nvidia/<version>/ (tools in the
    // container that reload it need the same files).
    std::string firmware = "/lib/firmware/nvidia/" + driver_version;
    if (root_.env->Exists(root_.ReadPath(firmware))) {
      stack.mounts.push_back({root_.HostPath(firmware), firmware});
    }
    return stack;
  }

 private:
  Status AddBinaries(DriverStack& stack) {
    for (std::string name : {"nvidia-smi", "nvidia-debugdump", "nvidia-persistenced",
                             "nvidia-cuda-mps-control", "nvidia-cuda-mps-server"}) {
      bool found = false;
      for (const char* dir : {"/usr/bin", "/bin", "/usr/local/bin"}) {
        std::string path = std::string(dir) + "/" + name;
        if (!root_.env->Exists(root_.ReadPath(path))) continue;
        stack.mounts.push_back({root_.HostPath(path), "/usr/bin/" + name});
        found = true;
        break;
      }
      if (!found && name == "nvidia-smi") {
        return FailedPrecondition("driver stack under " + root_.root.string() +
                                  ": nvidia-smi is missing (looked in /usr/bin, /bin, "
                                  "/usr/local/bin)");
      }
    }
    return Status::Ok();
  }

  DriverRoot root_;
};

}  // namespace

std::unique_ptr<DriverStackSource> MakeNvidiaDriverStack(const DriverRoot& root) {
  return std::make_unique<NvidiaDriverStack>(root);
}

}  // namespace accel_dra::discovery
