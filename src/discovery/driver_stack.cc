// The vendor-neutral part of the driver stack (driver_stack.h): library lookup by versioned file
// name, device nodes, and the backend that attaches each device's stack.

#include "accel_dra/discovery/driver_stack.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "accel_dra/discovery/version.h"

namespace accel_dra::discovery {
namespace fs = std::filesystem;

fs::path DriverRoot::ReadPath(std::string_view relative) const {
  return host.Path((root / fs::path(relative).relative_path()).string());
}

std::string DriverRoot::HostPath(std::string_view relative) const {
  return (root / fs::path(relative).relative_path()).lexically_normal().string();
}

const std::vector<std::string>& DriverLibraryDirs() {
  static const std::vector<std::string> kDirs = {
      "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
      "/lib/x86_64-linux-gnu",     "/lib/aarch64-linux-gnu",     "/lib64",     "/lib"};
  return kDirs;
}

namespace {

// The versions of "<base>.<version>" files in `dir` (sorted by file name).
std::vector<std::string> VersionsIn(const DriverRoot& root, const std::string& dir,
                                    std::string_view base) {
  std::vector<std::string> out;
  auto names = root.env->ListDir(root.ReadPath(dir));
  if (!names.ok()) return out;
  std::string prefix = std::string(base) + ".";
  for (const auto& n : *names) {
    if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0) continue;
    std::string v = n.substr(prefix.size());
    // A version starts with a digit and has a dot ("1" alone is the soname link).
    if (!std::isdigit(static_cast<unsigned char>(v.front())) || v.find('.') == std::string::npos) {
      continue;
    }
    out.push_back(v);
  }
  return out;
}

}  // namespace

std::optional<std::string> FindLibraryVersion(const DriverRoot& root, std::string_view base) {
  for (const auto& dir : DriverLibraryDirs()) {
    auto versions = VersionsIn(root, dir, base);
    if (!versions.empty()) return versions.front();
  }
  return std::nullopt;
}

Status AddLibraries(const DriverRoot& root, const std::vector<StackLibrary>& libraries,
                    const std::string& version, DriverStack& stack) {
  for (const auto& lib : libraries) {
    std::string file = std::string(lib.base) + "." + version;
    std::string found_dir;
    std::vector<std::string> others;
    for (const auto& dir : DriverLibraryDirs()) {
      if (root.env->Exists(root.ReadPath(dir + "/" + file))) {
        found_dir = dir;
        break;
      }
      for (auto& v : VersionsIn(root, dir, lib.base))
        others.push_back(dir + "/" + std::string(lib.base) + "." + v);
    }
    if (found_dir.empty() && !others.empty()) {
      return FailedPrecondition("driver stack under " + root.root.string() + ": " + others.front() +
                                " is another version than the driver's " + version + " (no " +
                                file + ")");
    }
    if (found_dir.empty()) {
      if (!lib.required) continue;
      return FailedPrecondition("driver stack under " + root.root.string() + ": " + file +
                                " is missing (looked in " + DriverLibraryDirs().front() +
                                " and the other library directories)");
    }
    std::string name = lib.soname.empty() ? file : std::string(lib.soname);
    stack.mounts.push_back({root.HostPath(found_dir + "/" + file), found_dir + "/" + name});
  }
  return Status::Ok();
}

bool AddDeviceNodeIfPresent(const DriverRoot& root, const std::string& path, DriverStack& stack) {
  if (!root.env->Exists(root.host.Path(path))) return false;
  stack.device_nodes.push_back(path);
  return true;
}

std::unique_ptr<DriverStackSource> MakeDriverStack(std::string_view vendor,
                                                   const DriverRoot& root) {
  if (vendor == "nvidia") return MakeNvidiaDriverStack(root);
  if (vendor == "amd") return MakeAmdDriverStack(root);
  if (vendor == "intel") return MakeIntelDriverStack(root);
  if (vendor == "habana") return MakeHabanaDriverStack(root);
  return nullptr;
}

namespace {

std::string DriverVersionOf(const model::Device& d) {
  for (const char* k : {"driverVersionRaw", "driverVersion"}) {
    auto it = d.attributes.find(k);
    if (it != d.attributes.end()) return it->second.string_value();
  }
  return "";
}

std::string VendorOf(const model::Device& d) {
  if (!d.stack_vendor.empty()) return d.stack_vendor;
  auto it = d.attributes.find("vendor");
  if (it == d.attributes.end()) return "";
  // An NVIDIA GPU bound to nouveau has no CUDA stack to give.
  auto module = d.attributes.find("driverName");
  if (it->second.string_value() == "nvidia" && module != d.attributes.end() &&
      module->second.string_value() != "nvidia") {
    return "";
  }
  return it->second.string_value();
}

void Apply(const DriverStack& stack, model::Device& d) {
  for (const auto& n : stack.device_nodes) {
    if (std::find(d.device_nodes.begin(), d.device_nodes.end(), n) == d.device_nodes.end()) {
      d.device_nodes.push_back(n);
    }
  }
  for (const auto& m : stack.mounts) {
    if (std::find(d.read_only_mounts.begin(), d.read_only_mounts.end(), m) ==
        d.read_only_mounts.end()) {
      d.read_only_mounts.push_back(m);
    }
  }
  if (stack.runtime_version && d.attributes.count("runtimeVersion") == 0) {
    SetVersionAttribute(d.attributes, "runtimeVersion", *stack.runtime_version);
  }
}

}  // namespace

std::vector<std::string> AttachDriverStacks(const DriverRoot& root,
                                            std::vector<model::Device>& devices) {
  std::vector<std::string> problems;
  // One lookup per (vendor, driver version): every device of a driver gets the same stack.
  std::map<std::pair<std::string, std::string>, Expected<DriverStack>> found;
  std::map<std::string, std::unique_ptr<DriverStackSource>> sources;
  for (auto& d : devices) {
    std::string vendor = VendorOf(d);
    auto& source = sources[vendor];
    if (!source) source = MakeDriverStack(vendor, root);
    if (!source) continue;
    std::string version = DriverVersionOf(d);
    auto key = std::make_pair(vendor, version);
    auto it = found.find(key);
    if (it == found.end()) it = found.emplace(key, source->Find(version)).first;
    if (!it->second.ok()) {
      d.driver_stack_problem = it->second.status().message();
      problems.push_back(d.name + ": " + d.driver_stack_problem);
      continue;
    }
    Apply(*it->second, d);
  }
  return problems;
}

DriverStackBackend::DriverStackBackend(std::unique_ptr<Backend> base, DriverRoot root)
    : base_(std::move(base)), root_(std::move(root)) {}

Expected<std::vector<model::Device>> DriverStackBackend::Discover() {
  ASSIGN_OR_RETURN(auto devices, base_->Discover());
  AttachDriverStacks(root_, devices);
  // One line per problem (all devices of a driver share it), once per set of devices.
  std::map<std::string, std::string> by_problem;
  for (const auto& d : devices) {
    if (d.driver_stack_problem.empty()) continue;
    auto& names = by_problem[d.driver_stack_problem];
    names += (names.empty() ? "" : ", ") + d.name;
  }
  for (const auto& [problem, names] : by_problem) {
    std::string line = problem + " (devices " + names + "; prepare refuses them until it is fixed)";
    if (std::find(logged_.begin(), logged_.end(), line) != logged_.end()) continue;
    logged_.push_back(line);
    spdlog::error("{}", line);
  }
  return devices;
}

}  // namespace accel_dra::discovery
