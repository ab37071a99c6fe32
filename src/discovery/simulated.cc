#include "accel_dra/discovery/simulated.h"

#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <set>

#include "accel_dra/common/log.h"
#include "accel_dra/common/names.h"
#include "accel_dra/common/strings.h"
#include "accel_dra/discovery/pci.h"
#include "accel_dra/discovery/version.h"

namespace accel_dra::discovery {
namespace {

// FNV-1a, used only to derive stable, node-unique simulated identities.
uint64_t Fnv1a(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string SimUuid(const std::string& node, int index) {
  std::string key = node + "/" + std::to_string(index);
  uint64_t a = Fnv1a(key, 0x5157);
  uint64_t b = Fnv1a(key, 0xa11ce);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "SIM-%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

// What is wrong with a group's versions and driver stack ("" = nothing), after its name.
std::string CheckVersions(const SimDeviceGroup& g) {
  // The same policy as a real host's versions (discovery/version.h): "560.35.03" is published
  // as 560.35.3 with driverVersionRaw; a string without any version is a profile error.
  if (!NormalizeVersion(g.driver_version) || g.driver_version.size() > 64) {
    return ".driverVersion \"" + g.driver_version +
           "\" is not a version (e.g. 1.2.3 or 560.35.03; at most 64 characters)";
  }
  if (!NormalizeVersion(g.runtime_version) || g.runtime_version.size() > 64) {
    return ".runtimeVersion \"" + g.runtime_version +
           "\" is not a version (e.g. 12.8.0; at most 64 characters)";
  }
  static const std::set<std::string> kStacks = {"", "nvidia", "amd", "intel", "habana"};
  if (kStacks.count(g.driver_stack) == 0) {
    return ".driverStack \"" + g.driver_stack +
           "\" is not accepted (none, nvidia, amd, intel, habana)";
  }
  return "";
}

}  // namespace

SimProfile DefaultSimProfile(int count) {
  SimProfile p;
  SimDeviceGroup g;
  g.count = count;
  p.groups.push_back(g);
  return p;
}

Expected<SimProfile> ParseSimProfile(const std::string& yaml, const std::string& source) {
  auto err = [&](const std::string& what) {
    return InvalidArgument("simulation profile " + source + ": " + what);
  };
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return err(std::string("invalid YAML: ") + e.what());
  }
  if (!root.IsMap() || !root["devices"] || !root["devices"].IsSequence()) {
    return err("expected a mapping with a \"devices\" list");
  }
  SimProfile p;
  for (const auto& kv : root) {
    // A key that is not a scalar (found by tests/fuzz/sim_profile_fuzz: as<> threw).
    if (!kv.first.IsScalar())
      return err("a key that is not a string (accepted: devices, driverVersionFile)");
    auto key = kv.first.as<std::string>();
    if (key == "devices") continue;
    if (key != "driverVersionFile") {
      return err("unknown key \"" + key + "\" (accepted: devices, driverVersionFile)");
    }
    if (!kv.second.IsScalar()) return err("driverVersionFile must be a path (a string)");
    p.driver_version_file = kv.second.as<std::string>();
    if (p.driver_version_file.empty() || p.driver_version_file.front() != '/') {
      return err("driverVersionFile \"" + p.driver_version_file + "\" must be an absolute path");
    }
  }
  static const std::set<std::string> kKeys = {
      "count",     "type",       "productName",      "memory",         "driverVersion",
      "numaNodes", "deviceNode", "timeSliceControl", "runtimeVersion", "driverStack"};
  int i = 0;
  for (const auto& item : root["devices"]) {
    std::string where = "devices[" + std::to_string(i++) + "]";
    if (!item.IsMap()) return err(where + " must be a mapping");
    SimDeviceGroup g;
    try {
      for (const auto& kv : item) {
        auto key = kv.first.as<std::string>();
        if (kKeys.count(key) == 0) {
          return err(where + ": unknown key \"" + key +
                     "\" (accepted: count, type, productName, memory, driverVersion, numaNodes, "
                     "deviceNode, timeSliceControl, runtimeVersion, driverStack)");
        }
      }
      if (item["count"]) g.count = item["count"].as<int>();
      if (item["type"]) g.type = item["type"].as<std::string>();
      if (item["productName"]) g.product_name = item["productName"].as<std::string>();
      if (item["memory"]) g.memory = item["memory"].as<std::string>();
      if (item["driverVersion"]) {
        g.driver_version = item["driverVersion"].as<std::string>();
        g.driver_version_set = true;
      }
      if (item["timeSliceControl"]) {
        auto c = item["timeSliceControl"].as<std::string>();
        if (c == "nvidia-smi") {
          g.timeslice_control = model::TimeSliceControl::kNvidiaSmi;
        } else if (c != "none") {
          return err(where + ".timeSliceControl \"" + c + "\" is not accepted (none, nvidia-smi)");
        }
      }
      if (item["runtimeVersion"]) g.runtime_version = item["runtimeVersion"].as<std::string>();
      if (item["driverStack"]) g.driver_stack = item["driverStack"].as<std::string>();
      if (g.driver_stack == "none") g.driver_stack.clear();
      if (item["numaNodes"]) g.numa_nodes = item["numaNodes"].as<int>();
      if (item["deviceNode"]) g.device_node = item["deviceNode"].as<std::string>();
    } catch (const YAML::Exception& e) {
      return err(where + ": " + e.what());
    }
    if (g.count < 0 || g.count > 100000) return err(where + ".count must be between 0 and 100000");
    if (g.numa_nodes < 1) return err(where + ".numaNodes must be at least 1");
    if (!IsDnsLabel(g.type) || g.type.size() > 20) {
      return err(where + ".type \"" + g.type +
                 "\" must be a short DNS label (lower-case letters, digits, '-')");
    }
    if (std::string bad = CheckVersions(g); !bad.empty()) return err(where + bad);
    if (auto q = model::ParseQuantityBytes(g.memory); !q.ok()) {
      return err(where + ".memory: " + q.status().message());
    }
    if (g.product_name.size() > 64) return err(where + ".productName is longer than 64 characters");
    if (!IsValidUtf8(g.product_name)) return err(where + ".productName is not UTF-8 text");
    if (!g.device_node.empty() && g.device_node.front() != '/') {
      return err(where + ".deviceNode must be an absolute path");
    }
    p.groups.push_back(std::move(g));
  }
  return p;
}

SimulatedBackend::SimulatedBackend(Env* env, std::string node_name, SimProfile profile,
                                   std::filesystem::path profile_file)
    : env_(env),
      node_name_(std::move(node_name)),
      profile_(std::move(profile)),
      profile_file_(std::move(profile_file)) {
  if (!profile_file_.empty()) {
    if (auto c = env_->ReadFile(profile_file_); c.ok()) last_file_content_ = *c;
  }
}

bool SimulatedBackend::MaybeChanged() {
  if (!profile_.driver_version_file.empty() && version_read_) {
    auto v = env_->ReadFile(profile_.driver_version_file);
    std::optional<std::string> now;
    if (v.ok()) now = *v;
    if (now != last_version_content_) {
      spdlog::info("simulated driver version file {} changed", profile_.driver_version_file);
      return true;
    }
  }
  if (profile_file_.empty()) return false;
  auto content = env_->ReadFile(profile_file_);
  if (!content.ok()) {
    if (!last_file_content_.empty()) {
      spdlog::warn("simulation profile {} is no longer readable ({}); keeping the last good one",
                   profile_file_.string(), content.status().message());
      last_file_content_.clear();
    }
    return false;
  }
  if (*content == last_file_content_) return false;
  last_file_content_ = *content;
  auto parsed = ParseSimProfile(*content, profile_file_.string());
  if (!parsed.ok()) {
    spdlog::error("{}; keeping the previous profile", parsed.status().message());
    return false;
  }
  profile_ = std::move(parsed).value();
  spdlog::info("simulation profile {} changed", profile_file_.string());
  return true;
}

Expected<std::vector<model::Device>> SimulatedBackend::Discover() {
  // The version of the simulated driver, when the profile names a version file.
  std::optional<std::string> file_version;
  if (!profile_.driver_version_file.empty()) {
    auto v = env_->ReadFile(profile_.driver_version_file);
    std::optional<std::string> content;
    if (v.ok()) content = *v;
    bool changed = !version_read_ || content != last_version_content_;
    last_version_content_ = content;
    version_read_ = true;
    if (content) {
      file_version = NormalizeVersion(Trim(*content));
      if (!file_version && changed) {
        spdlog::error(
            "simulated driver version file {}: \"{}\" is not a version (e.g. 1.2.3); devices "
            "without driverVersion publish none",
            profile_.driver_version_file, model::TruncateAttributeString(Trim(*content)));
      }
    } else if (changed) {
      spdlog::error(
          "simulated driver version file {} cannot be read ({}); devices without driverVersion "
          "publish none and containers do not get the file",
          profile_.driver_version_file, v.status().message());
    }
  }
  std::vector<model::Device> out;
  int index = 0;
  std::map<std::string, int> per_type;
  for (const auto& g : profile_.groups) {
    uint64_t mem = model::ParseQuantityBytes(g.memory).value_or(0);
    for (int k = 0; k < g.count; ++k, ++index) {
      int type_index = per_type[g.type]++;
      model::Device d;
      d.name = g.type + "-" + std::to_string(type_index);
      // PCI addresses: one bus per device under one root complex per NUMA node.
      int numa = index % g.numa_nodes;
      int bus = 0x10 + index;
      char bdf[32];
      std::snprintf(bdf, sizeof(bdf), "%04x:%02x:00.0", index / 200, bus % 256);
      char root[32];
      std::snprintf(root, sizeof(root), "pci%04x:%02x", index / 200, numa * 0x80);
      d.attributes.emplace("type", model::AttrValue::String(g.type));
      d.attributes.emplace("vendor", model::AttrValue::String("simulated"));
      d.attributes.emplace("productName", model::AttrValue::String(g.product_name));
      d.attributes.emplace("uuid", model::AttrValue::String(SimUuid(node_name_, index)));
      d.attributes.emplace("index", model::AttrValue::Int(type_index));
      if (g.driver_version_set || profile_.driver_version_file.empty()) {
        SetVersionAttribute(d.attributes, "driverVersion", g.driver_version);
      } else if (file_version) {
        SetVersionAttribute(d.attributes, "driverVersion", Trim(*last_version_content_));
      }
      SetVersionAttribute(d.attributes, "runtimeVersion", g.runtime_version);
      d.stack_vendor = g.driver_stack;
      if (!profile_.driver_version_file.empty() && last_version_content_) {
        d.read_only_mounts.push_back(
            {profile_.driver_version_file, std::string(model::kDriverVersionContainerPath)});
      }
      d.timeslice_control = g.timeslice_control;
      if (g.timeslice_control != model::TimeSliceControl::kNone) {
        d.timeslice_target = d.attributes.at("uuid").string_value();
      }
      d.attributes.emplace("driverName", model::AttrValue::String("accel-sim"));
      d.attributes.emplace("pciBusID", model::AttrValue::String(bdf));
      d.identity = {bdf, d.attributes.at("uuid").string_value()};
      d.attributes.emplace(model::kStdPciBusIdAttribute, model::AttrValue::String(bdf));
      d.attributes.emplace(model::kStdPcieRootAttribute, model::AttrValue::String(root));
      d.attributes.emplace("numaNode", model::AttrValue::Int(numa));
      d.attributes.emplace(model::kStdNumaNodeAttribute, model::AttrValue::Int(numa));
      d.attributes.emplace("simulated", model::AttrValue::Bool(true));
      d.capacity.emplace("memory", model::CanonicalBinaryQuantity(mem));
      if (!g.device_node.empty()) {
        std::string path = g.device_node;
        auto pos = path.find("{index}");
        if (pos != std::string::npos) path.replace(pos, 7, std::to_string(type_index));
        d.device_nodes.push_back(path);
      }
      out.push_back(std::move(d));
    }
  }
  return out;
}

}  // namespace accel_dra::discovery
