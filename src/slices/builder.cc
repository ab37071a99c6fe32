#include "accel_dra/common/names.h"
#include "accel_dra/slices/slices.h"

namespace accel_dra::slices {
namespace {

// "<domain>/<id>" or "<id>"; domain a DNS subdomain ≤ 63, id a C identifier ≤ 32.
bool ValidQualifiedName(const std::string& name) {
  auto slash = name.find('/');
  if (slash == std::string::npos) return IsCIdentifier(name);
  std::string domain = name.substr(0, slash);
  std::string id = name.substr(slash + 1);
  return domain.size() <= 63 && IsDnsSubdomain(domain) && IsCIdentifier(id);
}

}  // namespace

SanitizeResult SanitizeDevice(model::Device& d) {
  SanitizeResult r;
  if (!IsDnsLabel(d.name)) {
    r.keep = false;
    r.problems.push_back("device name \"" + d.name +
                         "\" is not a DNS label (lower-case letters, digits, '-', at most 63); "
                         "device not published");
    return r;
  }
  using Type = model::AttrValue::Type;
  for (auto it = d.attributes.begin(); it != d.attributes.end();) {
    const auto& [name, value] = *it;
    std::string why;
    if (!ValidQualifiedName(name)) {
      why = "invalid attribute name";
    } else if ((value.type() == Type::kString || value.type() == Type::kVersion) &&
               value.string_value().size() > kMaxAttributeValueLength) {
      why = "value longer than 64 characters";
    } else if (value.type() == Type::kVersion && !IsSemver(value.string_value())) {
      why = "version \"" + value.string_value() + "\" is not strict semver";
    }
    if (!why.empty()) {
      r.problems.push_back("attribute " + name + " dropped: " + why);
      it = d.attributes.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = d.capacity.begin(); it != d.capacity.end();) {
    if (!ValidQualifiedName(it->first) || !model::ParseQuantityBytes(it->second).ok()) {
      r.problems.push_back("capacity " + it->first + " dropped: invalid name or quantity \"" +
                           it->second + "\"");
      it = d.capacity.erase(it);
    } else {
      ++it;
    }
  }
  // Over the limit: keep capacities, then attributes in name order (deterministic).
  while (d.attributes.size() + d.capacity.size() > kMaxAttributesAndCapacities &&
         !d.attributes.empty()) {
    auto last = std::prev(d.attributes.end());
    r.problems.push_back("attribute " + last->first +
                         " dropped: more than 32 attributes and capacities");
    d.attributes.erase(last);
  }
  return r;
}

Json DeviceToJson(const model::Device& d) {
  Json j = {{"name", d.name}};
  if (!d.attributes.empty()) {
    Json attrs = Json::object();
    for (const auto& [k, v] : d.attributes) attrs[k] = v.ToJson();
    j["attributes"] = std::move(attrs);
  }
  if (!d.capacity.empty()) {
    Json caps = Json::object();
    for (const auto& [k, v] : d.capacity) caps[k] = {{"value", v}};
    j["capacity"] = std::move(caps);
  }
  if (!d.taints.empty()) {
    Json taints = Json::array();
    for (const auto& t : d.taints) {
      Json tj = {{"key", t.key}, {"effect", t.effect}};
      if (!t.value.empty()) tj["value"] = t.value;
      taints.push_back(std::move(tj));
    }
    j["taints"] = std::move(taints);
  }
  return j;
}

DesiredPool BuildPool(const model::Inventory& inventory, const PoolOptions& options) {
  DesiredPool pool;
  std::vector<Json> current;
  size_t per_slice =
      options.max_devices_per_slice == 0 ? kMaxDevicesPerSlice : options.max_devices_per_slice;
  for (model::Device d : inventory.devices()) {
    auto r = SanitizeDevice(d);
    for (auto& p : r.problems) pool.problems.push_back(d.name + ": " + p);
    if (!r.keep) continue;
    current.push_back(DeviceToJson(d));
    if (current.size() == per_slice) {
      pool.chunks.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) pool.chunks.push_back(std::move(current));
  return pool;
}

Json MakeSlice(const PoolOptions& options, const std::vector<Json>& devices, int64_t generation,
               int64_t slice_count) {
  Json meta = {{"generateName", options.node_name + "-" + options.driver + "-"},
               {"labels", {{kManagedByLabel, kManagedByValue}}}};
  if (options.node_uid) {
    meta["ownerReferences"] = Json::array({{{"apiVersion", "v1"},
                                            {"kind", "Node"},
                                            {"name", options.node_name},
                                            {"uid", *options.node_uid},
                                            {"controller", true}}});
  }
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceSlice"},
          {"metadata", std::move(meta)},
          {"spec",
           {{"driver", options.driver},
            {"nodeName", options.node_name},
            {"pool",
             {{"name", options.pool()},
              {"generation", generation},
              {"resourceSliceCount", slice_count}}},
            {"devices", devices}}}};
}

}  // namespace accel_dra::slices
