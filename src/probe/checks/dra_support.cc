// dra_support: resource.k8s.io/v1 is served, the driver publishes a complete pool on a Ready node,
// and a pod with a ResourceClaimTemplate runs with its claim allocated, reserved and injected.

#include <algorithm>

#include "accel_dra/common/json_path.h"
#include "accel_dra/common/strings.h"
#include "accel_dra/probe/verdicts.h"
#include "checks/check.h"

namespace accel_dra::probe {
namespace {

using Json = nlohmann::json;
constexpr const char* kPod = "dra-support";

bool CheckDraApi(ClusterSession& session, CheckResult& c) {
  c.ran.push_back("GET /apis/resource.k8s.io and /apis/resource.k8s.io/v1 (discovery)");
  if (!RequireDraApi(session, c)) return false;
  const std::string& version = *session.dra_version();
  if (version != "v1") {
    return Fail(c, "resource.k8s.io/v1 is not served (newest served version: " + version + ")");
  }
  auto served = session.ServedDraResources();
  if (!served.ok()) return Fail(c, served.status().message());
  return JudgeServedDraResources(*served, c);
}

// Lists the driver's pools into the evidence; *usable_nodes: the nodes with complete pools.
bool ObservePools(ClusterSession& session, CheckResult& c, size_t* usable_nodes) {
  const std::string& driver = session.driver();
  c.ran.push_back("list ResourceSlices with spec.driver=" + driver + " and the Nodes");
  auto inv = session.LoadInventory();
  if (!inv.ok()) return Fail(c, inv.status().message());
  if (inv->pools.empty()) {
    return Fail(c, "no ResourceSlices of driver " + driver +
                       " are published (is the driver's kubelet plugin running?)");
  }
  for (const auto& [name, p] : inv->pools) c.observed.push_back(DescribePool(*inv, p));
  if (inv->usable_by_node.empty()) {
    return Fail(c, "no complete ResourceSlice pool of driver " + driver +
                       " on a Ready (selected) node: " + c.observed.back());
  }
  *usable_nodes = inv->usable_by_node.size();
  return true;
}

// Runs the pod with a one-device claim template; *device: the device its claim was allocated.
bool RunClaimPod(ClusterSession& session, CheckResult& c, std::string* device) {
  const std::string& cls = session.plain_class();
  auto tmpl = session.CreateObject(c, "resourceclaimtemplates",
                                   ClaimTemplateManifest(kPod, cls, 1, session.namespace_name()));
  if (!tmpl.ok()) return Fail(c, tmpl.status().message());
  auto pod = session.CreatePod(c, session.NewPod(kPod, {{"main", true}}, kPod, ""));
  if (!pod.ok()) return Fail(c, pod.status().message());
  c.ran.push_back("a pod with a ResourceClaimTemplate (class " + cls + ", 1 device)");
  auto running = session.WaitRunning(kPod);
  if (!running.ok()) return Fail(c, running.status().message());
  auto claim = session.PodClaim(*running);
  if (!claim.ok()) return Fail(c, claim.status().message());
  auto devices = session.AllocatedDevices(*claim);
  std::string claim_name = JsonString(*claim, {"metadata", "name"});
  bool reserved = false;
  for (const auto& r : JsonOrNull(*claim, {"status", "reservedFor"})) {
    if (JsonString(r, {"uid"}) == JsonString(*running, {"metadata", "uid"})) reserved = true;
  }
  c.observed.push_back("pod dra-support Running on node " +
                       JsonString(*running, {"spec", "nodeName"}) + "; claim " + claim_name +
                       ": allocated [" + Join(devices) + "], " +
                       (reserved ? "reserved for the pod" : "NOT reserved for the pod"));
  if (devices.empty()) {
    return Fail(c, "claim " + claim_name +
                       " of running pod dra-support has no allocation of driver " +
                       session.driver());
  }
  if (!reserved) return Fail(c, "claim " + claim_name + " is not reserved for pod dra-support");
  *device = DeviceNames(devices)[0];
  return true;
}

}  // namespace

bool JudgeServedDraResources(const std::vector<std::string>& served, CheckResult& c) {
  c.observed.push_back("resource.k8s.io/v1 serves: " + Join(served, ", "));
  std::vector<std::string> missing;
  for (const char* r :
       {"deviceclasses", "resourceclaims", "resourceclaimtemplates", "resourceslices"}) {
    if (std::find(served.begin(), served.end(), r) == served.end()) missing.push_back(r);
  }
  if (!missing.empty()) return Fail(c, "resource.k8s.io/v1 does not serve " + Join(missing, ", "));
  return true;
}

bool JudgeDeviceInjection(const std::string& pod, const std::string& device,
                          const InspectResult& out, CheckResult& c) {
  c.observed.push_back("inside the container: ACCEL_VISIBLE_DEVICES=" + VisibleDevices(out) +
                       ", device nodes [" + Join(out.accelerator_devices) +
                       "] (inspect: " + out.tool + ")");
  if (VisibleDevices(out) != device || out.accelerator_devices.empty()) {
    return Fail(c, "the container of pod " + pod + ", allocated " + device +
                       ", sees ACCEL_VISIBLE_DEVICES=\"" + VisibleDevices(out) +
                       "\" and device nodes [" + Join(out.accelerator_devices) +
                       "]: the driver's injection is missing");
  }
  return true;
}

void DraSupport(ClusterSession& session, CheckResult& c) {
  size_t usable_nodes = 0;
  std::string device;
  if (!CheckDraApi(session, c) || !ObservePools(session, c, &usable_nodes) ||
      !RunClaimPod(session, c, &device)) {
    return;
  }
  auto out = session.WaitInspect(kPod, "main");
  if (!out.ok()) {
    Fail(c, out.status().message());
    return;
  }
  if (!JudgeDeviceInjection(kPod, device, *out, c)) return;
  c.status = CheckStatus::kPass;
  c.message = "resource.k8s.io/v1 served; " + std::to_string(usable_nodes) +
              " node(s) with complete pools; claim allocated and reserved";
}

}  // namespace accel_dra::probe
