// driver_runtime_management: per node, the devices' driverVersion, containerRuntime and
// containerRuntimeVersion attributes agree with each other and with Node.status.nodeInfo; a
// DeviceClass requiring the newest published driver version allocates a device whose container
// sees that version, and one requiring more than any node has stays Pending.

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <tuple>

#include "accel_dra/common/json_path.h"
#include "accel_dra/common/strings.h"
#include "accel_dra/probe/verdicts.h"
#include "checks/check.h"

namespace accel_dra::probe {
namespace {

using Json = nlohmann::json;
using AttributeValues = std::map<std::string, std::set<std::string>>;

constexpr const char* kRuntimeAttributes[] = {"driverVersion", "containerRuntime",
                                              "containerRuntimeVersion"};

// The values the devices publish per attribute; *without_driver_version: devices publishing none.
AttributeValues CollectAttributes(const std::vector<PoolDevice>& devices, std::string_view driver,
                                  std::vector<std::string>* without_driver_version) {
  AttributeValues values;
  for (const auto& d : devices) {
    for (const char* a : kRuntimeAttributes) {
      std::string v = DeviceAttribute(d.raw, driver, a);
      if (!v.empty()) values[a].insert(v);
      if (v.empty() && std::string(a) == "driverVersion") without_driver_version->push_back(d.name);
    }
  }
  return values;
}

// The one value of an attribute the devices agree on ("" when none publishes it).
std::string Agreed(const AttributeValues& values, const std::string& attribute) {
  auto it = values.find(attribute);
  return it == values.end() || it->second.empty() ? "" : *it->second.begin();
}

std::string NodeLine(const std::string& node, size_t devices, const AttributeValues& values,
                     const Json& info) {
  std::string line = "node " + node + ": " + std::to_string(devices) + " devices";
  for (const char* a : kRuntimeAttributes) {
    auto it = values.find(a);
    std::vector<std::string> vs;
    if (it != values.end()) vs.assign(it->second.begin(), it->second.end());
    line += ", " + std::string(a) + "=" + (vs.empty() ? "(missing)" : Join(vs, "|"));
  }
  return line +
         "; nodeInfo.containerRuntimeVersion=" + JsonString(info, {"containerRuntimeVersion"}) +
         ", kubeletVersion=" + JsonString(info, {"kubeletVersion"});
}

// Compares every usable node; *max_version: the newest driverVersion published, *warnings: the
// nodes whose devices publish no runtime attributes.
bool CompareNodes(ClusterSession& session, CheckResult& c, ClusterInventory* inv,
                  std::string* max_version, std::vector<std::string>* warnings) {
  c.ran.push_back(
      "compare device attributes driverVersion, containerRuntime, containerRuntimeVersion per node "
      "with Node.status.nodeInfo");
  auto loaded = session.LoadInventory();
  if (!loaded.ok()) return Fail(c, loaded.status().message());
  *inv = std::move(*loaded);
  if (inv->usable_by_node.empty()) {
    return Fail(c, "no node with a complete ResourceSlice pool of driver " + session.driver() +
                       " (are the driver's slices published?)");
  }
  for (const auto& [node, devices] : inv->usable_by_node) {
    NodeRuntime runtime;
    if (!JudgeNodeRuntime(node, devices, inv->nodes[node].raw, session.driver(), &runtime, c)) {
      return false;
    }
    if (!runtime.warning.empty()) warnings->push_back(runtime.warning);
    if (max_version->empty() || CompareVersions(runtime.driver_version, *max_version) > 0) {
      *max_version = runtime.driver_version;
    }
  }
  return true;
}

struct VersionClasses {
  std::string min_class;     // driverVersion >= the newest published
  std::string over_class;    // driverVersion >= over_version
  std::string over_version;  // above every node's
};

// The two DeviceClasses, a claim template and a pod for each.
bool CreateVersionClasses(ClusterSession& session, CheckResult& c, const std::string& max_version,
                          VersionClasses* classes) {
  const std::string& ns = session.namespace_name();
  const std::string& driver = session.driver();
  classes->min_class = ns + "-min-driver";
  classes->over_class = ns + "-over-driver";
  auto over = NextMajorVersion(max_version);
  if (!over.ok()) return Fail(c, "the newest published " + over.status().message());
  classes->over_version = *over;
  std::string min_cel = MinDriverVersionCel(driver, max_version);
  std::string over_cel = MinDriverVersionCel(driver, classes->over_version);
  c.ran.push_back("DeviceClass " + classes->min_class + " with CEL: " + min_cel);
  c.ran.push_back("DeviceClass " + classes->over_class + " with CEL: " + over_cel);
  for (const auto& [name, cel, t] : {std::tuple{classes->min_class, min_cel, "min-driver"},
                                     std::tuple{classes->over_class, over_cel, "over-driver"}}) {
    auto r = session.CreateObject(c, "deviceclasses",
                                  DeviceClassManifest(name, {DriverCel(driver), cel}, ns), true);
    if (!r.ok()) return Fail(c, r.status().message());
    auto tr =
        session.CreateObject(c, "resourceclaimtemplates", ClaimTemplateManifest(t, name, 1, ns));
    if (!tr.ok()) return Fail(c, tr.status().message());
    auto p = session.CreatePod(c, session.NewPod(t, {{"main", true}}, t, ""));
    if (!p.ok()) return Fail(c, p.status().message());
  }
  return true;
}

// Pod min-driver runs on a device publishing at least max_version, and its container sees the
// version the device publishes.
bool CheckMinDriverPod(ClusterSession& session, CheckResult& c, const ClusterInventory& inv,
                       const VersionClasses& classes, const std::string& max_version) {
  auto running = session.WaitRunning("min-driver");
  if (!running.ok()) {
    return Fail(c,
                "a claim for driverVersion >= " + max_version + ": " + running.status().message());
  }
  auto claim = session.PodClaim(*running);
  if (!claim.ok()) return Fail(c, claim.status().message());
  auto devices = session.AllocatedDevices(*claim);
  if (devices.size() != 1) {
    return Fail(c, "claim " + JsonString(*claim, {"metadata", "name"}) + " has " +
                       std::to_string(devices.size()) + " devices of driver " + session.driver() +
                       ", expected 1");
  }
  std::string pool_name = devices[0].substr(0, devices[0].find('/'));
  std::string dev = DeviceNames(devices)[0];
  const auto pool = inv.pools.find(pool_name);
  const PoolInfo none;
  const PoolInfo& p = pool == inv.pools.end() ? none : pool->second;
  std::string published;
  for (const auto& d : p.devices) {
    if (d.name == dev) published = DeviceAttribute(d.raw, session.driver(), "driverVersion");
  }
  c.observed.push_back("pod min-driver (class " + classes.min_class + ") Running on node " +
                       JsonString(*running, {"spec", "nodeName"}) + " with device " + devices[0] +
                       " (published driverVersion " + published + ")");
  if (CompareVersions(published, max_version) < 0) {
    return Fail(c, "class " + classes.min_class + " (driverVersion >= " + max_version +
                       ") was allocated device " + devices[0] + " with driverVersion " + published);
  }
  auto out = session.WaitInspect("min-driver", "main");
  if (!out.ok()) return Fail(c, out.status().message());
  return JudgeContainerDriverVersion(p.node, devices[0], published, *out, c);
}

// Pod over-driver stays Pending with the scheduler's reason, its claim unallocated.
bool CheckOverDriverPod(ClusterSession& session, CheckResult& c, const VersionClasses& classes) {
  auto reason = session.WaitUnschedulable("over-driver");
  if (!reason.ok())
    return Fail(c, "class " + classes.over_class + ": " + reason.status().message());
  c.observed.push_back("pod over-driver (class " + classes.over_class + ", driverVersion >= " +
                       classes.over_version + ") stays Pending: " + *reason);
  if (std::string held = session.PendingClaimDevices("over-driver"); !held.empty()) {
    return Fail(c, "the claim of pending pod over-driver (driverVersion >= " +
                       classes.over_version + ") was allocated " + held);
  }
  return true;
}

}  // namespace

bool JudgeNodeRuntime(const std::string& node, const std::vector<PoolDevice>& devices,
                      const Json& node_object, std::string_view driver, NodeRuntime* runtime,
                      CheckResult& c) {
  std::vector<std::string> without_driver_version;
  AttributeValues values = CollectAttributes(devices, driver, &without_driver_version);
  const Json& info = JsonOrNull(node_object, {"status", "nodeInfo"});
  std::string node_runtime = JsonString(info, {"containerRuntimeVersion"});
  c.observed.push_back(NodeLine(node, devices.size(), values, info));
  if (!without_driver_version.empty()) {
    return Fail(c, "devices " + Join(without_driver_version) + " on node " + node +
                       " publish no driverVersion attribute");
  }
  for (const auto& [a, vs] : values) {
    if (vs.size() > 1) {
      return Fail(c, "devices on node " + node + " disagree on " + a + ": " +
                         Join(std::vector<std::string>(vs.begin(), vs.end()), " vs "));
    }
  }
  auto sep = node_runtime.find("://");
  if (sep == std::string::npos) {
    return Fail(c, "node " + node + " reports containerRuntimeVersion \"" + node_runtime +
                       "\" (expected <runtime>://<version>)");
  }
  std::string rt_name = node_runtime.substr(0, sep), rt_version = node_runtime.substr(sep + 3);
  if (values.count("containerRuntime") == 0 || values.count("containerRuntimeVersion") == 0) {
    runtime->warning = "node " + node +
                       ": devices publish no containerRuntime/containerRuntimeVersion "
                       "attributes; only nodeInfo (" +
                       node_runtime + ") was checked";
  }
  if (values.count("containerRuntime") && Agreed(values, "containerRuntime") != rt_name) {
    return Fail(c, "node " + node + ": devices publish containerRuntime " +
                       Agreed(values, "containerRuntime") + " but the node runs " + rt_name);
  }
  if (values.count("containerRuntimeVersion") &&
      CompareVersions(Agreed(values, "containerRuntimeVersion"), rt_version) != 0) {
    return Fail(c, "node " + node + ": devices publish containerRuntimeVersion " +
                       Agreed(values, "containerRuntimeVersion") + " but the node runs " +
                       node_runtime);
  }
  runtime->driver_version = Agreed(values, "driverVersion");
  return true;
}

Expected<std::string> NextMajorVersion(const std::string& version) {
  const std::string major = version.substr(0, version.find('.'));
  uint64_t n = 0;
  for (char ch : major) {
    if (ch < '0' || ch > '9') {
      return InvalidArgument("driverVersion " + Quote(version) +
                             " does not start with a decimal major version");
    }
    const uint64_t digit = static_cast<uint64_t>(ch - '0');
    if (n > (UINT64_MAX - digit) / 10) {
      return InvalidArgument("driverVersion " + Quote(version) +
                             ": the major version does not fit in 64 bits");
    }
    n = n * 10 + digit;
  }
  if (n == UINT64_MAX) {
    return InvalidArgument("driverVersion " + Quote(version) +
                           " has no next major version within 64 bits");
  }
  return std::to_string(n + 1) + ".0.0";
}

bool JudgeContainerDriverVersion(const std::string& node, const std::string& device,
                                 const std::string& published, const InspectResult& out,
                                 CheckResult& c) {
  c.observed.push_back("inside the container: driver version " +
                       (out.driver_version.empty() ? "(none)" : out.driver_version) + " from " +
                       out.driver_version_source + " (inspect: " + out.tool + ")");
  if (out.driver_version.empty()) {
    return Fail(c, "a container holding " + device + " sees no driver version (none of " +
                       std::string(kDriverVersionFile) +
                       ", /proc/driver/nvidia/version, /sys/module/*/version is readable)");
  }
  if (CompareVersions(out.driver_version, published) != 0) {
    return Fail(c, "node " + node + " publishes driverVersion " + published + " for " +
                       device.substr(device.find('/') + 1) +
                       " but the container holding it sees driver version " + out.driver_version +
                       " (from " + out.driver_version_source + ")");
  }
  return true;
}

void DriverRuntimeManagement(ClusterSession& session, CheckResult& c) {
  ClusterInventory inv;
  std::string max_version;
  std::vector<std::string> warnings;
  VersionClasses classes;
  if (!RequireDraApi(session, c) || !CompareNodes(session, c, &inv, &max_version, &warnings) ||
      !CreateVersionClasses(session, c, max_version, &classes) ||
      !CheckMinDriverPod(session, c, inv, classes, max_version) ||
      !CheckOverDriverPod(session, c, classes)) {
    return;
  }
  c.status = CheckStatus::kPass;
  c.message = "published driver version " + max_version +
              " matches what containers see; CEL minimum-version selection honoured";
  if (!warnings.empty()) c.message += "; WARNING: " + Join(warnings, "; ");
}

}  // namespace accel_dra::probe
