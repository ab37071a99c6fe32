// The driver's pools, the Nodes and the usable devices, from listed objects (see
// cluster_inventory.h).

#include "accel_dra/probe/cluster_inventory.h"

#include "accel_dra/common/json_path.h"

namespace accel_dra::probe {
namespace {

using Json = nlohmann::json;

int64_t IntAt(const Json& j, JsonPath path) {
  const Json& v = JsonOrNull(j, path);
  return v.is_number_integer() ? v.get<int64_t>() : 0;  // a float could overflow the conversion
}

NodeInfo NodeOf(const Json& n, const std::set<std::string>* selected) {
  NodeInfo info;
  info.name = JsonString(n, {"metadata", "name"});
  info.raw = n;
  info.selected = selected == nullptr || selected->count(info.name) > 0;
  for (const auto& cond : JsonOrNull(n, {"status", "conditions"})) {
    if (JsonString(cond, {"type"}) == "Ready") info.ready = JsonString(cond, {"status"}) == "True";
  }
  return info;
}

// Adds one slice to its pool: a newer generation starts the pool afresh, an older one is ignored.
void AddSlice(const Json& s, std::map<std::string, PoolInfo>& pools) {
  std::string pool_name = JsonString(s, {"spec", "pool", "name"});
  PoolInfo& p = pools[pool_name];
  p.name = pool_name;
  int64_t gen = IntAt(s, {"spec", "pool", "generation"});
  int64_t count = IntAt(s, {"spec", "pool", "resourceSliceCount"});
  if (gen > p.generation) {
    p.generation = gen;
    p.slices_at_generation = 0;
    p.devices.clear();
    p.expected_slices = count;
  }
  if (gen < p.generation) return;
  ++p.slices_at_generation;
  if (!JsonString(s, {"spec", "nodeName"}).empty()) p.node = JsonString(s, {"spec", "nodeName"});
  for (const auto& d : JsonOrNull(s, {"spec", "devices"})) {
    p.devices.push_back({pool_name, JsonString(d, {"name"}), d});
  }
}

}  // namespace

ClusterInventory BuildClusterInventory(const std::vector<Json>& nodes,
                                       const std::set<std::string>* selected,
                                       const std::vector<Json>& slices) {
  ClusterInventory inv;
  for (const auto& n : nodes) {
    NodeInfo info = NodeOf(n, selected);
    inv.nodes[info.name] = info;
  }
  for (const auto& s : slices) AddSlice(s, inv.pools);
  for (const auto& [name, p] : inv.pools) {
    auto n = inv.nodes.find(p.node);
    if (!p.complete() || n == inv.nodes.end() || !n->second.ready || !n->second.selected) continue;
    auto& list = inv.usable_by_node[p.node];
    list.insert(list.end(), p.devices.begin(), p.devices.end());
  }
  return inv;
}

std::string DescribePool(const ClusterInventory& inv, const PoolInfo& p) {
  auto n = inv.nodes.find(p.node);
  std::string node_state = p.node.empty() ? "no nodeName"
                           : n == inv.nodes.end()
                               ? "node " + p.node + " does not exist"
                               : "node " + p.node + (n->second.ready ? " Ready" : " NotReady") +
                                     (n->second.selected ? "" : " (not selected)");
  return "pool " + p.name + ": generation " + std::to_string(p.generation) + ", " +
         std::to_string(p.slices_at_generation) + "/" + std::to_string(p.expected_slices) +
         " slices (" + (p.complete() ? "complete" : "INCOMPLETE") + "), " +
         std::to_string(p.devices.size()) + " devices, " + node_state;
}

std::string DeviceAttribute(const Json& device, std::string_view driver, std::string_view name) {
  const Json& attrs = JsonOrNull(device, {"attributes"});
  if (!attrs.is_object()) return "";
  for (const std::string& key :
       {std::string(name), std::string(driver) + "/" + std::string(name)}) {
    auto it = attrs.find(key);
    if (it == attrs.end() || !it->is_object()) continue;
    for (const char* type : {"version", "string", "int", "bool"}) {
      auto v = it->find(type);
      if (v == it->end()) continue;
      if (v->is_string()) return v->get<std::string>();
      return v->dump();
    }
  }
  return "";
}

}  // namespace accel_dra::probe
