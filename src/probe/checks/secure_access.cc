// secure_accelerator_access: a claimed container sees exactly its devices, a sibling container and
// a pod without a claim see none, two claims see disjoint devices, a pod asking for more devices
// than the node has left stays Pending, and no probe pod needed privileged mode or hostPath.

#include <algorithm>
#include <iterator>
#include <set>
#include <sstream>

#include "accel_dra/common/json_path.h"
#include "accel_dra/common/strings.h"
#include "accel_dra/probe/verdicts.h"
#include "checks/check.h"

namespace accel_dra::probe {
namespace {

using Json = nlohmann::json;

struct IsolationPods {
  Json holder;              // pod holder, running
  std::string node;         // where it runs; the other pods are pinned there
  ClusterInventory inv;     // loaded once holder runs
  size_t node_devices = 0;  // usable devices of that node
  bool two = false;         // whether pod second (its own claim) runs too
};

// Pod holder (a claimed and an unclaimed container), then pod no-claim and, when the node has two
// devices, pod second on holder's node.
bool StartIsolationPods(ClusterSession& session, CheckResult& c, IsolationPods* pods) {
  auto tmpl = session.CreateObject(
      c, "resourceclaimtemplates",
      ClaimTemplateManifest("one-device", session.plain_class(), 1, session.namespace_name()));
  if (!tmpl.ok()) return Fail(c, tmpl.status().message());
  c.ran.push_back(
      "pod holder: container with-claim references a 1-device claim, container without-claim does "
      "not");
  auto p = session.CreatePod(
      c,
      session.NewPod("holder", {{"with-claim", true}, {"without-claim", false}}, "one-device", ""));
  if (!p.ok()) return Fail(c, p.status().message());
  auto holder = session.WaitRunning("holder");
  if (!holder.ok()) return Fail(c, holder.status().message());
  pods->holder = *holder;
  pods->node = JsonString(*holder, {"spec", "nodeName"});
  auto inv = session.LoadInventory();
  if (!inv.ok()) return Fail(c, inv.status().message());
  pods->inv = std::move(*inv);
  pods->node_devices = pods->inv.usable_by_node[pods->node].size();

  c.ran.push_back("pod no-claim without any claim on node " + pods->node);
  auto nc = session.NewPod("no-claim", {{"main", false}}, "", "");
  nc.node_selector = session.OnNode(pods->node);
  if (auto r = session.CreatePod(c, nc); !r.ok()) return Fail(c, r.status().message());
  pods->two = pods->node_devices >= 2;
  if (pods->two) {
    c.ran.push_back("pod second with another 1-device claim on node " + pods->node);
    auto s = session.NewPod("second", {{"main", true}}, "one-device", "");
    s.node_selector = session.OnNode(pods->node);
    if (auto r = session.CreatePod(c, s); !r.ok()) return Fail(c, r.status().message());
  }
  return true;
}

// What each container of the isolation pods saw, with its claim's devices.
bool CollectViews(ClusterSession& session, CheckResult& c, const IsolationPods& pods,
                  std::vector<ContainerView>* views) {
  auto claim_devices = [&](const Json& pod) -> Expected<std::vector<std::string>> {
    ASSIGN_OR_RETURN(Json cl, session.PodClaim(pod));
    return DeviceNames(session.AllocatedDevices(cl));
  };
  auto hd = claim_devices(pods.holder);
  if (!hd.ok()) return Fail(c, hd.status().message());
  for (const char* ctr : {"with-claim", "without-claim"}) {
    auto out = session.WaitInspect("holder", ctr);
    if (!out.ok()) return Fail(c, out.status().message());
    views->push_back(
        {"holder", ctr, std::string(ctr) == "with-claim" ? *hd : std::vector<std::string>{}, *out});
  }
  if (auto r = session.WaitRunning("no-claim"); !r.ok()) return Fail(c, r.status().message());
  auto nc = session.WaitInspect("no-claim", "main");
  if (!nc.ok()) return Fail(c, nc.status().message());
  views->push_back({"no-claim", "main", {}, *nc});
  if (!pods.two) return true;
  auto second = session.WaitRunning("second");
  if (!second.ok()) return Fail(c, second.status().message());
  auto sd = claim_devices(*second);
  if (!sd.ok()) return Fail(c, sd.status().message());
  auto out = session.WaitInspect("second", "main");
  if (!out.ok()) return Fail(c, out.status().message());
  views->push_back({"second", "main", *sd, *out});
  return true;
}

bool JudgeViews(const IsolationPods& pods, const std::vector<ContainerView>& views,
                CheckResult& c) {
  for (const auto& v : views) {
    if (!JudgeIsolation(v, c)) return false;
  }
  if (pods.two) return JudgeDisjoint(views.front(), views.back(), c);
  c.observed.push_back("node " + pods.node + " has only " + std::to_string(pods.node_devices) +
                       " device(s): the two-pod isolation case was not run");
  return true;
}

// The node's devices no claim (in any namespace) holds; *free_devices.
bool CountFreeDevices(ClusterSession& session, CheckResult& c, const IsolationPods& pods,
                      size_t* free_devices) {
  size_t used = 0;
  auto all_claims = session.ListClaimsEverywhere();
  if (!all_claims.ok()) return Fail(c, all_claims.status().message());
  std::set<std::string> node_devs;
  auto usable = pods.inv.usable_by_node.find(pods.node);
  if (usable != pods.inv.usable_by_node.end()) {
    for (const auto& d : usable->second) node_devs.insert(d.pool + "/" + d.name);
  }
  for (const auto& cl : *all_claims) {
    for (const auto& d : session.AllocatedDevices(cl)) used += node_devs.count(d);
  }
  *free_devices = node_devs.size() > used ? node_devs.size() - used : 0;
  c.observed.push_back("node " + pods.node + ": " + std::to_string(node_devs.size()) +
                       " devices, " + std::to_string(used) + " allocated, " +
                       std::to_string(*free_devices) + " free");
  return true;
}

// Capacity: pod filler takes every remaining device of the node, then pod extra must stay Pending
// with its claim unallocated.
bool CheckCapacity(ClusterSession& session, CheckResult& c, const IsolationPods& pods) {
  const std::string& node = pods.node;
  size_t free_devices = 0;
  if (!CountFreeDevices(session, c, pods, &free_devices)) return false;
  if (free_devices > 0) {
    c.ran.push_back("pod filler takes the remaining " + std::to_string(free_devices) +
                    " device(s) of node " + node);
    auto ft = session.CreateObject(
        c, "resourceclaimtemplates",
        ClaimTemplateManifest("filler", session.plain_class(), static_cast<int>(free_devices),
                              session.namespace_name()));
    if (!ft.ok()) return Fail(c, ft.status().message());
    auto f = session.NewPod("filler", {{"main", true}}, "filler", "");
    f.node_selector = session.OnNode(node);
    if (auto r = session.CreatePod(c, f); !r.ok()) return Fail(c, r.status().message());
    if (auto r = session.WaitRunning("filler"); !r.ok()) return Fail(c, r.status().message());
  }
  c.ran.push_back("pod extra asks for one more device on node " + node);
  auto e = session.NewPod("extra", {{"main", true}}, "one-device", "");
  e.node_selector = session.OnNode(node);
  if (auto r = session.CreatePod(c, e); !r.ok()) return Fail(c, r.status().message());
  auto reason = session.WaitUnschedulable("extra");
  if (!reason.ok()) {
    return Fail(c,
                "with every device of node " + node + " allocated: " + reason.status().message());
  }
  c.observed.push_back("pod extra stays Pending: " + *reason);
  if (std::string held = session.PendingClaimDevices("extra"); !held.empty()) {
    return Fail(c, "the claim of pending pod extra was allocated " + held);
  }
  return true;
}

void AuditPods(const ClusterSession& session, CheckResult& c) {
  size_t risky = 0;
  for (const auto& pod : session.pods_created()) {
    std::string why;
    if (PodUsesPrivilegeOrHostPath(pod, &why)) ++risky;
  }
  c.observed.push_back(std::to_string(session.pods_created().size()) + " probe pods so far: " +
                       (risky == 0 ? "no privileged mode, no hostPath volumes used"
                                   : std::to_string(risky) + " used privilege or hostPath"));
}

// The device names a container is told about: ACCEL_DEVICE_<KEY> values (not the per-device
// settings) and ACCEL_VISIBLE_DEVICES entries.
std::set<std::string> NamedDevices(const InspectResult& out) {
  std::set<std::string> named;
  for (const auto& [k, v] : out.accel_env) {
    if (k.starts_with("ACCEL_DEVICE_") && k.find("_RESOURCE_CLAIM") == std::string::npos &&
        k.find("_SHARING_STRATEGY") == std::string::npos &&
        k.find("_TIMESLICE_") == std::string::npos &&
        k.find("_PARTITION_COUNT") == std::string::npos) {
      named.insert(v);
    }
  }
  std::stringstream visible(VisibleDevices(out));
  for (std::string item; std::getline(visible, item, ',');) {
    if (!item.empty()) named.insert(item);
  }
  return named;
}

}  // namespace

bool JudgeIsolation(const ContainerView& s, CheckResult& c) {
  std::string who =
      "container " + s.container + " of pod " + s.pod +
      (s.allocated.empty() ? " (no claim)" : " (claim for " + Join(s.allocated) + ")");
  c.observed.push_back(who + ": device nodes [" + Join(s.out.device_nodes) +
                       "], accelerator nodes [" + Join(s.out.accelerator_devices) +
                       "], ACCEL_VISIBLE_DEVICES=" + VisibleDevices(s.out) + ", " +
                       std::to_string(s.out.accel_env.size()) + " ACCEL_* variables");
  if (s.allocated.empty()) {
    if (!s.out.device_nodes.empty() || !s.out.accel_env.empty()) {
      return Fail(c, who + " sees device nodes [" + Join(s.out.device_nodes) + "] and " +
                         std::to_string(s.out.accel_env.size()) +
                         " ACCEL_* variables; expected none");
    }
    return true;
  }
  std::set<std::string> named = NamedDevices(s.out);
  std::vector<std::string> extra;
  std::set_difference(named.begin(), named.end(), s.allocated.begin(), s.allocated.end(),
                      std::back_inserter(extra));
  if (!extra.empty()) {
    return Fail(c, who + " sees extra device(s) " + Join(extra) +
                       " (ACCEL_VISIBLE_DEVICES=" + VisibleDevices(s.out) + ", device nodes [" +
                       Join(s.out.accelerator_devices) + "])");
  }
  if (named != std::set<std::string>(s.allocated.begin(), s.allocated.end())) {
    return Fail(c, who + " sees ACCEL_VISIBLE_DEVICES=" + VisibleDevices(s.out) + ", expected " +
                       Join(s.allocated));
  }
  const auto per_device = PerDeviceNodes(s.out.accelerator_devices);
  if (per_device.size() != s.allocated.size()) {
    return Fail(c, who +
                       (per_device.size() > s.allocated.size() ? " sees extra device node(s): "
                                                               : " sees only ") +
                       std::to_string(per_device.size()) + " accelerator device nodes [" +
                       Join(s.out.accelerator_devices) + "] for " +
                       std::to_string(s.allocated.size()) + " allocated device(s)");
  }
  return true;
}

bool JudgeDisjoint(const ContainerView& a, const ContainerView& b, CheckResult& c) {
  std::vector<std::string> common;
  const auto na = PerDeviceNodes(a.out.accelerator_devices);
  const auto nb = PerDeviceNodes(b.out.accelerator_devices);
  std::set_intersection(na.begin(), na.end(), nb.begin(), nb.end(), std::back_inserter(common));
  if (!common.empty() || a.allocated == b.allocated) {
    return Fail(c, "pods " + a.pod + " and " + b.pod +
                       ", each with its own claim, both see device node(s) [" + Join(common) +
                       "] (devices " + Join(a.allocated) + " / " + Join(b.allocated) + ")");
  }
  c.observed.push_back("pods " + a.pod + " and " + b.pod +
                       " see disjoint devices: " + Join(a.allocated) + " / " + Join(b.allocated));
  return true;
}

void SecureAcceleratorAccess(ClusterSession& session, CheckResult& c) {
  IsolationPods pods;
  std::vector<ContainerView> views;
  if (!RequireDraApi(session, c) || !RequireDevices(session, c) ||
      !StartIsolationPods(session, c, &pods) || !CollectViews(session, c, pods, &views) ||
      !JudgeViews(pods, views, c) || !CheckCapacity(session, c, pods)) {
    return;
  }
  AuditPods(session, c);
  c.status = CheckStatus::kPass;
  c.message =
      "claims see exactly their devices, pods and containers without claims see none, capacity "
      "enforced; no privileged, no hostPath used";
}

}  // namespace accel_dra::probe
