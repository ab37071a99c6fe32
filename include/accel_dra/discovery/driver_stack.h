#pragma once
// The driver stack: what a container needs beside the device's own nodes to use an accelerator
// from a plain image (user-space libraries of the kernel driver's exact version, the vendor's
// tools, control device nodes, firmware, version files), found under the host's driver root
// (--driver-root; "/" by default, /run/nvidia/driver with a containerised NVIDIA driver), and
// the runtime API version the installed stack supports (runtimeVersion). One source per vendor
// (driver_stack_<vendor>.cc) behind DriverStackSource; docs/driver-stack.md lists what each
// injects.
//
// Promises:
// - Host reads go through the Env under the HostRoot (fixture trees in tests); the paths in the
//   result are host paths as the container runtime sees them (the driver root's, not the
//   HostRoot's).
// - A stack is all or nothing: a required part that is missing, or any library present only in
//   another version than the driver's, is an error naming the file and both versions; the
//   device is then published with model::Device::driver_stack_problem set and prepare refuses
//   it (never a half-injected stack).
// - Library versions are read from the file names (libcuda.so.<driver version>); a library is
//   mounted at its soname path (libcuda.so.1) in the directory it has under the driver root, so
//   the dynamic loader finds it without an ld cache or LD_LIBRARY_PATH.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/common/env.h"
#include "accel_dra/discovery/backend.h"
#include "accel_dra/model/device.h"

namespace accel_dra::discovery {

// Where the driver's user space lives: `root` is a host path; it is read as
// host.Path(root / relative).
struct DriverRoot {
  Env* env = nullptr;
  HostRoot host;
  std::filesystem::path root = "/";
  // The path to read for the host path root/<relative>.
  std::filesystem::path ReadPath(std::string_view relative) const;
  // The host path root/<relative> (what a CDI mount names).
  std::string HostPath(std::string_view relative) const;
};

// What the containers of a device get from its driver stack.
struct DriverStack {
  std::vector<std::string> device_nodes;  // host paths (control nodes shared by all devices)
  std::vector<model::FileMount> mounts;   // read-only bind mounts
  // The runtime API version the stack supports (AMD: ROCm, Intel: Level Zero), as found; nullopt
  // when the stack does not say (NVIDIA's comes from NVML, see nvml.h).
  std::optional<std::string> runtime_version;
};

class DriverStackSource {
 public:
  virtual ~DriverStackSource() = default;
  // The stack for a driver of `driver_version` (as the driver reports it, e.g. "560.35.03";
  // empty when unknown). FailedPrecondition when the stack is missing or of another version.
  virtual Expected<DriverStack> Find(const std::string& driver_version) = 0;
};

// One per vendor ("nvidia", "amd", "intel", "habana"); nullptr for a vendor without a stack.
std::unique_ptr<DriverStackSource> MakeNvidiaDriverStack(const DriverRoot& root);
std::unique_ptr<DriverStackSource> MakeAmdDriverStack(const DriverRoot& root);
std::unique_ptr<DriverStackSource> MakeIntelDriverStack(const DriverRoot& root);
std::unique_ptr<DriverStackSource> MakeHabanaDriverStack(const DriverRoot& root);
std::unique_ptr<DriverStackSource> MakeDriverStack(std::string_view vendor, const DriverRoot& root);

// Library directories searched under a driver root, in order (multiarch first).
const std::vector<std::string>& DriverLibraryDirs();
// One library of a stack: `base` is the unversioned name ("libcuda.so"), `soname` the name it is
// mounted as ("libcuda.so.1"; empty: the versioned file name).
struct StackLibrary {
  std::string_view base;
  std::string_view soname;
  bool required = false;
};
// Adds each library of `libraries` at `version` to `stack` (see the promises above); an error
// names the first missing required library or the first one of another version.
Status AddLibraries(const DriverRoot& root, const std::vector<StackLibrary>& libraries,
                    const std::string& version, DriverStack& stack);
// Adds the host device node `path` when it exists under the HostRoot; false when it does not.
bool AddDeviceNodeIfPresent(const DriverRoot& root, const std::string& path, DriverStack& stack);
// The version a file name "<base>.<version>" carries, for files in the library directories;
// the first found (nullopt: none).
std::optional<std::string> FindLibraryVersion(const DriverRoot& root, std::string_view base);

// A Backend that runs `base` and adds each device's driver stack (by model::Device::stack_vendor,
// else its `vendor` attribute; none for an NVIDIA GPU whose driverName is not nvidia) to its
// device nodes and mounts, and the stack's runtime version
// as `runtimeVersion` (when the device has none). A stack that cannot be given sets
// driver_stack_problem (logged once per message). The driver version matched is the device's
// driverVersionRaw, else driverVersion.
class DriverStackBackend : public Backend {
 public:
  DriverStackBackend(std::unique_ptr<Backend> base, DriverRoot root);
  std::string Name() const override { return base_->Name(); }
  Expected<std::vector<model::Device>> Discover() override;
  bool MaybeChanged() override { return base_->MaybeChanged(); }

 private:
  std::unique_ptr<Backend> base_;
  DriverRoot root_;
  std::vector<std::string> logged_;
};

// Adds the stacks to `devices` (what DriverStackBackend does after its base's Discover()).
// Returns the problems found (one per device that has one).
std::vector<std::string> AttachDriverStacks(const DriverRoot& root,
                                            std::vector<model::Device>& devices);

}  // namespace accel_dra::discovery
