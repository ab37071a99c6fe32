#pragma once
// What the cluster offers the probe: the driver's ResourceSlice pools, the Nodes, and the devices a
// check may use. Built from listed objects by a pure function (no cluster), so it is unit-tested
// with canned objects; the cluster session lists them (src/probe/cluster_session.h).
//
// Promises:
//  - A pool's devices are those of its slices at the pool's newest generation; the pool is
//    complete when that generation has as many slices as its resourceSliceCount (and that is > 0).
//  - usable_by_node holds, per node, the devices of complete pools on Ready nodes that match the
//    node selector; a node without such a pool has no entry.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace accel_dra::probe {

struct PoolDevice {
  std::string pool;
  std::string name;
  nlohmann::json raw;  // the slice's device entry
};

struct PoolInfo {
  std::string name;
  std::string node;
  int64_t generation = -1;
  int64_t expected_slices = 0;
  int slices_at_generation = 0;
  std::vector<PoolDevice> devices;  // of the newest generation
  bool complete() const { return expected_slices > 0 && slices_at_generation == expected_slices; }
};

struct NodeInfo {
  std::string name;
  bool ready = false;
  bool selected = true;  // matches the node selector
  nlohmann::json raw;
};

struct ClusterInventory {
  std::map<std::string, PoolInfo> pools;
  std::map<std::string, NodeInfo> nodes;
  // Devices of complete pools on Ready, selected nodes, by node.
  std::map<std::string, std::vector<PoolDevice>> usable_by_node;
};

// `nodes`: every Node; `selected`: the names of the Nodes matching the node selector, or nullptr
// when there is no selector (every node is selected); `slices`: the driver's ResourceSlices.
ClusterInventory BuildClusterInventory(const std::vector<nlohmann::json>& nodes,
                                       const std::set<std::string>* selected,
                                       const std::vector<nlohmann::json>& slices);

// One line about a pool for the evidence: generation, slices, completeness, devices, its node.
std::string DescribePool(const ClusterInventory& inventory, const PoolInfo& pool);

// A device attribute of `driver` (published under its bare or "<driver>/"-qualified name) as a
// string; "" when the device does not publish it.
std::string DeviceAttribute(const nlohmann::json& device, std::string_view driver,
                            std::string_view name);

}  // namespace accel_dra::probe
