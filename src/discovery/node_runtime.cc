#include "accel_dra/discovery/node_runtime.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>

#include "accel_dra/common/names.h"
#include "accel_dra/common/strings.h"
#include "accel_dra/discovery/pci.h"
#include "accel_dra/discovery/version.h"

namespace accel_dra::discovery {
namespace {

bool RuntimeNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

// a >= b for strict-semver cores "x.y.z" (prerelease ignored: "2.0.0-rc.1" counts as 2.0.0).
bool AtLeast(const std::string& semver, int major, int minor) {
  unsigned long long a = 0;
  unsigned long long b = 0;
  if (std::sscanf(semver.c_str(), "%llu.%llu", &a, &b) != 2) return false;
  return a > static_cast<unsigned long long>(major) ||
         (a == static_cast<unsigned long long>(major) &&
          b >= static_cast<unsigned long long>(minor));
}

}  // namespace

std::optional<ContainerRuntime> ParseContainerRuntimeVersion(std::string_view s) {
  s = TrimView(s);
  size_t sep = s.find("://");
  if (sep == std::string_view::npos || sep == 0 || sep > 63) return std::nullopt;
  std::string_view name = s.substr(0, sep);
  if (!std::all_of(name.begin(), name.end(), RuntimeNameChar)) return std::nullopt;
  std::string_view version = TrimView(s.substr(sep + 3));
  if (version.empty()) return std::nullopt;
  return ContainerRuntime{std::string(name), std::string(version)};
}

std::optional<bool> ContainerdConfigEnableCdi(std::string_view toml) {
  std::optional<bool> result;
  size_t pos = 0;
  while (pos <= toml.size()) {
    size_t nl = toml.find('\n', pos);
    std::string_view line = toml.substr(pos, nl == std::string_view::npos ? toml.npos : nl - pos);
    pos = nl == std::string_view::npos ? toml.size() + 1 : nl + 1;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = TrimView(line);
    if (line.rfind("enable_cdi", 0) != 0) continue;
    std::string_view rest = TrimView(line.substr(10));
    if (rest.empty() || rest[0] != '=') continue;  // e.g. "enable_cdi_foo = ..."
    rest = TrimView(rest.substr(1));
    if (rest == "true") result = true;
    if (rest == "false") result = false;
  }
  return result;
}

std::optional<bool> CdiEnabledFor(const ContainerRuntime& runtime, const ContainerdConfig& config) {
  auto v = NormalizeVersion(runtime.version);
  if (!v) return std::nullopt;
  if (runtime.name == "containerd") {
    if (!AtLeast(*v, 1, 7)) return false;  // CDI arrived in containerd 1.7
    if (AtLeast(*v, 2, 0)) return config.enable_cdi.value_or(true);
    if (config.enable_cdi) return *config.enable_cdi;
    if (config.readable) return false;  // 1.7 default
    return std::nullopt;
  }
  if (runtime.name == "cri-o") return AtLeast(*v, 1, 23);
  return std::nullopt;
}

NodeAttributes DriverOnlyAttributes() {
  NodeAttributes out;
  out.attributes.emplace_back("sharingMode", model::AttrValue::String(std::string(kSharingModes)));
  return out;
}

NodeAttributes NodeAttributesFromNode(const nlohmann::json& node, const ContainerdConfig& config) {
  NodeAttributes out;
  auto& attrs = out.attributes;
  auto name = [&node]() -> std::string {
    const auto* p = node.is_object() ? &node : nullptr;
    if (p == nullptr) return "?";
    auto it = p->find("metadata");
    if (it == p->end() || !it->is_object()) return "?";
    auto n = it->find("name");
    return n != it->end() && n->is_string() ? n->get<std::string>() : "?";
  }();
  std::string raw;
  if (node.is_object()) {
    const auto ptr = "/status/nodeInfo/containerRuntimeVersion"_json_pointer;
    if (node.contains(ptr) && node[ptr].is_string()) raw = node[ptr].get<std::string>();
  }
  std::optional<ContainerRuntime> rt;
  if (!node.is_object()) {
    out.notes.push_back("no Node object: no container runtime attributes");
  } else if (TrimView(raw).empty()) {
    out.notes.push_back("Node " + name +
                        " reports no status.nodeInfo.containerRuntimeVersion: no container "
                        "runtime attributes");
  } else if (rt = ParseContainerRuntimeVersion(raw); !rt) {
    out.notes.push_back("Node " + name + " status.nodeInfo.containerRuntimeVersion \"" +
                        model::TruncateAttributeString(raw) +
                        "\" is not \"<runtime>://<version>\": no container runtime attributes");
  }
  if (rt) {
    attrs.emplace_back("containerRuntime", model::AttrValue::String(rt->name));
    std::map<std::string, model::AttrValue> version_attrs;
    auto outcome = SetVersionAttribute(version_attrs, "containerRuntimeVersion", rt->version);
    if (outcome == VersionOutcome::kRawOnly || outcome == VersionOutcome::kUnprintable) {
      out.notes.push_back("Node " + name + " container runtime version \"" +
                          model::TruncateAttributeString(rt->version) +
                          "\" is not a version: publishing containerRuntimeVersionRaw only");
    }
    if (auto it = version_attrs.find("containerRuntimeVersion"); it != version_attrs.end()) {
      attrs.emplace_back(it->first, it->second);
    }
    if (auto cdi = CdiEnabledFor(*rt, config)) {
      attrs.emplace_back("cdiEnabled", model::AttrValue::Bool(*cdi));
    }
    for (auto& kv : DriverOnlyAttributes().attributes) attrs.push_back(std::move(kv));
    if (auto it = version_attrs.find("containerRuntimeVersionRaw"); it != version_attrs.end()) {
      attrs.emplace_back(it->first, it->second);
    }
  } else {
    for (auto& kv : DriverOnlyAttributes().attributes) attrs.push_back(std::move(kv));
  }
  return out;
}

model::Inventory WithNodeAttributes(const model::Inventory& inventory, const NodeAttributes& extra,
                                    size_t max_total, std::vector<std::string>* left_out) {
  std::vector<model::Device> devices = inventory.devices();
  std::set<std::string> missed;
  for (auto& d : devices) {
    for (const auto& [name, value] : extra.attributes) {
      if (d.attributes.count(name) != 0) continue;
      if (d.attributes.size() + d.capacity.size() >= max_total) {
        missed.insert(name);
        continue;
      }
      d.attributes.emplace(name, value);
    }
  }
  if (left_out != nullptr) {
    for (const auto& [name, value] : extra.attributes) {
      if (missed.count(name) != 0) left_out->push_back(name);
    }
  }
  return model::Inventory(std::move(devices));
}

}  // namespace accel_dra::discovery
