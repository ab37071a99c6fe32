// The driver-info files a claim's containers get (preparer_internal.h, docs/driver-stack.md).

#include <cctype>
#include <filesystem>

#include "preparer_internal.h"

namespace accel_dra::claims {
namespace {

// A version as a path component: what is not [0-9A-Za-z.+-] becomes '_'.
std::string PathSafe(const std::string& v) {
  std::string out = v;
  for (char& c : out) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '+' || c == '-';
    if (!ok) c = '_';
  }
  return out;
}

std::string AttrString(const model::Device& dev, const char* name) {
  auto it = dev.attributes.find(name);
  return it == dev.attributes.end() ? "" : it->second.string_value();
}

}  // namespace

std::vector<DriverInfoFile> DriverInfoFilesFor(const std::string& dir, const model::Device& dev) {
  std::vector<DriverInfoFile> out;
  std::string driver = AttrString(dev, "driverVersion");
  std::string runtime = AttrString(dev, "runtimeVersion");
  if (dir.empty() || (driver.empty() && runtime.empty())) return out;
  std::filesystem::path base =
      std::filesystem::path(dir) / ("driver-" + PathSafe(driver) + "_runtime-" + PathSafe(runtime));
  std::string container_dir(model::kDriverInfoContainerDir);
  for (const auto& [name, value] : {std::pair{model::kDriverVersionFileName, driver},
                                    {model::kRuntimeVersionFileName, runtime}}) {
    if (value.empty()) continue;
    out.push_back({{(base / std::string(name)).string(), container_dir + "/" + std::string(name)},
                   value + "\n"});
  }
  return out;
}

Status EnsureDriverInfoFiles(Env* env, const std::vector<DriverInfoFile>& files) {
  for (const auto& f : files) {
    if (auto now = env->ReadFile(f.mount.host_path); now.ok() && *now == f.content) continue;
    std::filesystem::path path(f.mount.host_path);
    RETURN_IF_ERROR(env->CreateDirs(path.parent_path(), 0755));
    RETURN_IF_ERROR(env->WriteFileAtomic(path, f.content, 0644, Durability::kDurable)
                        .WithContext("writing the driver-info file " + f.mount.host_path));
  }
  return Status::Ok();
}

}  // namespace accel_dra::claims
