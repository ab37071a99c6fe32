#pragma once
// accel-dra-probe's in-pod mode: what a container can reach, as stable `RESULT: KEY=VALUE` lines.
//
// This header and src/probe/inspect.cc depend on the C++ standard library only, so that the
// static `accel-dra-inspect` tool (bind-mounted into containers by the plugin's --inspect-tool)
// links with nothing but libc and libstdc++.
//
// Output (one line each, in this order; values never contain a newline; lists are comma-separated
// and sorted; the keys are a stable interface documented in docs/probe.md):
//   RESULT: INSPECT_VERSION=1
//   RESULT: INSPECT_TOOL=binary|shell
//   RESULT: HOSTNAME=<hostname>
//   RESULT: DEVICE_NODE_COUNT=<n>          character devices under /dev (recursive), runtime
//   RESULT: DEVICE_NODES=<path,...>        defaults excluded (see IsRuntimeDefaultDevice)
//   RESULT: ACCELERATOR_COUNT=<n>          device nodes matching the vendor patterns
//   RESULT: ACCELERATOR_DEVICES=<path,...> (see IsVendorDevice); upstream-compatible count
//   RESULT: ACCEL_ENV_COUNT=<n>            number of ACCEL_* variables
//   RESULT: ENV_<NAME>=<value>             one per ACCEL_* variable, sorted by name
//   RESULT: DRIVER_VERSION=<version>       first readable driver version source, or empty
//   RESULT: DRIVER_VERSION_SOURCE=<path>   that source's path, or "none"
//   RESULT: DONE=true                      last line: the output is complete

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace accel_dra::probe {

inline constexpr int kInspectVersion = 1;
// Where the plugin's claim spec mounts the simulated driver-version file.
inline constexpr std::string_view kDriverVersionFile = "/run/accel-dra/driver/version";
// The files every claim's containers get with the published driverVersion and runtimeVersion
// (the plugin's driver info, docs/driver-stack.md).
inline constexpr std::string_view kDriverInfoVersionFile = "/run/accel-dra/driver/driver-version";
inline constexpr std::string_view kRuntimeVersionFile = "/run/accel-dra/driver/runtime-version";
inline constexpr std::string_view kInspectToolPath = "/usr/local/bin/accel-dra-inspect";

struct InspectOptions {
  // The container's root ("/" for real use; a fixture tree in tests).
  std::filesystem::path root = "/";
  // The environment (NAME=VALUE strings), e.g. from environ.
  std::vector<std::string> environ;
  std::string hostname;
  // Whether a path (under root) is a character device. Default: lstat + S_ISCHR. Tests substitute
  // one that accepts regular files, as a fixture tree cannot hold device nodes without root.
  std::function<bool(const std::filesystem::path&)> is_char_device;
};

struct InspectResult {
  std::string tool = "binary";
  std::string hostname;
  std::vector<std::string> device_nodes;         // container paths, sorted
  std::vector<std::string> accelerator_devices;  // the vendor-pattern subset, sorted
  std::map<std::string, std::string> accel_env;  // ACCEL_* variables
  std::string driver_version;
  std::string driver_version_source = "none";
  std::string runtime_version;  // kRuntimeVersionFile's first line; empty without it
  bool done = false;            // parsed output only: the DONE line was seen
};

// Paths (container view, e.g. "/dev/null") the runtime puts into every container.
bool IsRuntimeDefaultDevice(std::string_view path);
// /dev/nvidia*, /dev/dri/card*, /dev/dri/renderD*, /dev/kfd, /dev/accel/accel*, /dev/accel-sim*.
bool IsVendorDevice(std::string_view path);
// The version in a driver version file's content: the /proc/driver/nvidia/version format
// ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15 ...") or a plain "1.2.3" line.
std::string ParseDriverVersion(std::string_view content);

InspectResult Inspect(const InspectOptions& options);
std::string FormatResult(const InspectResult& result);

// Parses `RESULT:` lines out of arbitrary text (pod logs); other lines are ignored, later keys win.
InspectResult ParseResult(std::string_view text);

// The `accel-dra-inspect` / `accel-dra-probe inspect` command line: [--root DIR] [--help].
int InspectMain(int argc, char** argv);

}  // namespace accel_dra::probe
