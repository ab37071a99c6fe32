// The test environment and the raw outputs of the evidence (see evidence.h).

#include "accel_dra/probe/evidence.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "accel_dra/common/json_path.h"
#include "accel_dra/common/strings.h"

namespace accel_dra::probe {
namespace {

using Json = nlohmann::json;

// Indented JSON of `j`, cut at kRawOutputLimit bytes with a line saying so.
std::string Limited(std::string text) {
  if (text.size() <= kRawOutputLimit) return text;
  const size_t total = text.size();
  text.resize(kRawOutputLimit);
  return text + "\n... (cut: " + std::to_string(total - kRawOutputLimit) + " of " +
         std::to_string(total) + " bytes not shown)";
}

std::string Dump(const Json& j) {
  return Limited(j.dump(2, ' ', false, Json::error_handler_t::replace));
}

DeviceGroup GroupOf(const PoolDevice& d, std::string_view driver) {
  DeviceGroup g;
  g.product = DeviceAttribute(d.raw, driver, "productName");
  g.vendor = DeviceAttribute(d.raw, driver, "vendor");
  g.driver_version = DeviceAttribute(d.raw, driver, "driverVersion");
  g.runtime_version = DeviceAttribute(d.raw, driver, "runtimeVersion");
  g.simulated = DeviceAttribute(d.raw, driver, "simulated") == "true";
  return g;
}

std::string OrUnknown(const std::string& s) { return s.empty() ? "(not published)" : s; }

}  // namespace

bool Environment::Simulated() const {
  for (const auto& n : nodes) {
    for (const auto& g : n.devices) {
      if (g.simulated) return true;
    }
  }
  return false;
}

Environment DescribeEnvironment(const ClusterInventory& inv, std::string_view driver) {
  std::map<std::string, NodeEnvironment> by_node;
  for (const auto& [name, pool] : inv.pools) {
    NodeEnvironment& n = by_node[pool.node];
    n.name = pool.node;
    auto node = inv.nodes.find(pool.node);
    if (node != inv.nodes.end()) {
      const Json& info = JsonOrNull(node->second.raw, {"status", "nodeInfo"});
      n.kubelet_version = JsonString(info, {"kubeletVersion"});
      n.os_image = JsonString(info, {"osImage"});
      n.kernel_version = JsonString(info, {"kernelVersion"});
      n.architecture = JsonString(info, {"architecture"});
      n.container_runtime = JsonString(info, {"containerRuntimeVersion"});
    }
    for (const auto& d : pool.devices) {
      DeviceGroup g = GroupOf(d, driver);
      auto key = [](const DeviceGroup& x) {
        return std::tie(x.product, x.vendor, x.driver_version, x.runtime_version, x.simulated);
      };
      auto it = std::find_if(n.devices.begin(), n.devices.end(),
                             [&](const DeviceGroup& e) { return key(e) == key(g); });
      if (it == n.devices.end()) it = n.devices.insert(n.devices.end(), g);
      it->devices.push_back(d.name);
    }
  }
  Environment env;
  for (auto& [name, n] : by_node) env.nodes.push_back(std::move(n));
  return env;
}

std::vector<std::string> EnvironmentLines(const Report& r) {
  std::vector<std::string> out;
  out.push_back("Kubernetes server: " +
                (r.server_version.empty() ? std::string("(unknown)") : r.server_version));
  if (r.environment.nodes.empty()) {
    out.push_back("Nodes: none publishes devices of driver " + r.driver);
  }
  for (const auto& n : r.environment.nodes) {
    out.push_back("Node " + n.name + ": kubelet " + OrUnknown(n.kubelet_version) + ", OS " +
                  OrUnknown(n.os_image) + ", kernel " + OrUnknown(n.kernel_version) + ", " +
                  OrUnknown(n.architecture) + ", container runtime " +
                  OrUnknown(n.container_runtime));
    for (const auto& g : n.devices) {
      out.push_back("  " + std::to_string(g.devices.size()) + " x " + OrUnknown(g.product) +
                    " (vendor " + OrUnknown(g.vendor) + (g.simulated ? ", simulated" : "") +
                    "): driverVersion " + OrUnknown(g.driver_version) + ", runtimeVersion " +
                    OrUnknown(g.runtime_version) + " [" + Join(g.devices, ", ") + "]");
    }
  }
  if (r.environment.Simulated()) {
    out.push_back(
        "Devices: simulated (the driver publishes simulated: true for them; no real "
        "accelerator backs them, device nodes are stand-ins)");
  }
  return out;
}

RawOutput SlicesOutput(const std::vector<Json>& slices, std::string_view driver) {
  Json items = Json::array();
  for (const auto& s : slices) {
    Json devices = Json::array();
    for (const auto& d : JsonOrNull(s, {"spec", "devices"})) {
      devices.push_back({{"name", JsonOrNull(d, {"name"})},
                         {"attributes", JsonOrNull(d, {"attributes"})},
                         {"capacity", JsonOrNull(d, {"capacity"})}});
    }
    items.push_back({{"name", JsonOrNull(s, {"metadata", "name"})},
                     {"nodeName", JsonOrNull(s, {"spec", "nodeName"})},
                     {"pool", JsonOrNull(s, {"spec", "pool"})},
                     {"devices", devices}});
  }
  return {
      "kubectl get resourceslices --field-selector spec.driver=" + std::string(driver) + " -o json",
      Dump(items),
      "items[]: metadata.name, spec.nodeName, spec.pool, spec.devices[] name, "
      "attributes, capacity"};
}

RawOutput ClaimOutput(const Json& claim) {
  std::string name = JsonString(claim, {"metadata", "name"});
  std::string ns = JsonString(claim, {"metadata", "namespace"});
  Json excerpt = {{"name", name}, {"status", JsonOrNull(claim, {"status"})}};
  return {"kubectl get resourceclaim " + name + " -n " + ns + " -o json", Dump(excerpt),
          "metadata.name, status (allocation, reservedFor, devices)"};
}

RawOutput LogsOutput(std::string_view ns, std::string_view pod, std::string_view container,
                     std::string_view log) {
  return {"kubectl logs -n " + std::string(ns) + " " + std::string(pod) + " -c " +
              std::string(container),
          Limited(std::string(log)), ""};
}

RawOutput SchedulingOutput(std::string_view ns, std::string_view pod, std::string_view message) {
  return {"kubectl get pod " + std::string(pod) + " -n " + std::string(ns) +
              " -o jsonpath='{.status.conditions[?(@.type==\"PodScheduled\")].message}'",
          Limited(std::string(message)), ""};
}

void RecordRaw(CheckResult& c, RawOutput out) {
  for (auto& r : c.raw) {
    if (r.command == out.command) {
      r = std::move(out);
      return;
    }
  }
  c.raw.push_back(std::move(out));
}

}  // namespace accel_dra::probe
