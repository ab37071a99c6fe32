// gpu_sharing: one ResourceClaim with TimeSlicing (interval Short) shared by --sharing-pods pods
// on one device (partial, not pass, when the containers say the interval is only advisory); then a
// claim with SpacePartitioning (2 partitions), reported when the devices refuse it rather than
// failed.

#include <set>

#include "accel_dra/common/json_path.h"
#include "accel_dra/common/strings.h"
#include "accel_dra/probe/verdicts.h"
#include "checks/check.h"

namespace accel_dra::probe {
namespace {

constexpr const char* kSharedClaim = "time-sliced";
constexpr const char* kPartitioned = "partitioned";

struct SharingPods {
  std::vector<std::string> names;
  std::vector<InspectResult> outs;  // their inspect output
  std::set<std::string> nodes;      // where they run
  std::string device;               // the shared claim's device
};

// The claim and the pods sharing it.
bool StartSharingPods(ClusterSession& session, CheckResult& c, SharingPods* pods) {
  const int n = session.options().sharing_pods;
  auto claim =
      session.CreateObject(c, "resourceclaims",
                           ClaimManifest(kSharedClaim, session.plain_class(), 1,
                                         SharingConfig(session.driver(), "TimeSlicing", "Short", 0),
                                         session.namespace_name()));
  if (!claim.ok()) return Fail(c, claim.status().message());
  c.ran.push_back("ResourceClaim time-sliced (TimeSlicing, interval Short) shared by " +
                  std::to_string(n) + " pods");
  for (int i = 0; i < n; ++i) {
    pods->names.push_back("shared-" + std::to_string(i));
    auto p = session.CreatePod(
        c, session.NewPod(pods->names.back(), {{"main", true}}, "", kSharedClaim));
    if (!p.ok()) return Fail(c, p.status().message());
  }
  return true;
}

// Waits for every sharing pod and its inspect output.
bool WaitSharingPods(ClusterSession& session, CheckResult& c, SharingPods* pods) {
  for (const auto& name : pods->names) {
    auto running = session.WaitRunning(name);
    if (!running.ok()) {
      return Fail(c, "time-sliced claim shared by " + std::to_string(pods->names.size()) +
                         " pods: " + running.status().message());
    }
    pods->nodes.insert(JsonString(*running, {"spec", "nodeName"}));
    auto out = session.WaitInspect(name, "main");
    if (!out.ok()) return Fail(c, out.status().message());
    pods->outs.push_back(*out);
  }
  return true;
}

// The shared claim has one device, reserved for every pod.
bool CheckSharedClaim(ClusterSession& session, CheckResult& c, SharingPods* pods) {
  auto got = session.GetClaim(kSharedClaim);
  if (!got.ok()) return Fail(c, got.status().message());
  auto devices = session.AllocatedDevices(*got);
  size_t reserved = JsonOrNull(*got, {"status", "reservedFor"}).size();
  const std::vector<std::string> nodes(pods->nodes.begin(), pods->nodes.end());
  c.observed.push_back("claim time-sliced: allocated [" + Join(devices) + "], reserved for " +
                       std::to_string(reserved) + " pods, on node(s) " + Join(nodes));
  if (devices.size() != 1) {
    return Fail(c, "claim time-sliced was allocated " + std::to_string(devices.size()) +
                       " devices, expected 1");
  }
  if (reserved != pods->names.size()) {
    return Fail(c, "claim time-sliced is reserved for " + std::to_string(reserved) +
                       " pods, expected " + std::to_string(pods->names.size()));
  }
  pods->device = devices[0];
  return true;
}

// SpacePartitioning is optional: when its pod does not run, that is reported, not failed.
bool TrySpacePartitioning(ClusterSession& session, CheckResult& c) {
  c.ran.push_back("ResourceClaim partitioned (SpacePartitioning, 2 partitions) used by 1 pod");
  auto claim = session.CreateObject(
      c, "resourceclaims",
      ClaimManifest(kPartitioned, session.plain_class(), 1,
                    SharingConfig(session.driver(), "SpacePartitioning", "", 2),
                    session.namespace_name()));
  if (!claim.ok()) return Fail(c, claim.status().message());
  auto pod = session.CreatePod(c, session.NewPod(kPartitioned, {{"main", true}}, "", kPartitioned));
  if (!pod.ok()) return Fail(c, pod.status().message());
  auto running = session.WaitRunning(kPartitioned);
  if (!running.ok()) {
    if (session.interrupted()) return Fail(c, running.status().message());
    c.observed.push_back("SpacePartitioning not available: " + running.status().message());
    c.message += "; SpacePartitioning not available on these devices";
    return true;
  }
  auto out = session.WaitInspect(kPartitioned, "main");
  if (!out.ok()) return Fail(c, out.status().message());
  if (!JudgePartitionedPod(*out, c)) return false;
  c.message += "; SpacePartitioning partition count visible";
  return true;
}

// The value of the ACCEL_DEVICE_<KEY><suffix> variable ("" when unset).
std::string PerDeviceEnv(const InspectResult& out, std::string_view suffix) {
  std::string value;
  for (const auto& [k, v] : out.accel_env) {
    if (k.ends_with(suffix)) value = v;
  }
  return value;
}

}  // namespace

bool JudgeTimeSlicedPods(const std::vector<std::string>& names,
                         const std::vector<InspectResult>& outs, CheckResult& c) {
  for (size_t i = 0; i < outs.size(); ++i) {
    const InspectResult& out = outs[i];
    std::string strategy = PerDeviceEnv(out, "_SHARING_STRATEGY");
    std::string interval = PerDeviceEnv(out, "_TIMESLICE_INTERVAL");
    std::string enforced = PerDeviceEnv(out, "_TIMESLICE_ENFORCED");
    c.observed.push_back("pod " + names[i] + ": ACCEL_VISIBLE_DEVICES=" + VisibleDevices(out) +
                         ", device nodes [" + Join(out.accelerator_devices) + "], strategy " +
                         strategy + ", interval " + interval +
                         (enforced.empty() ? "" : ", enforced " + enforced));
    if (strategy != "TimeSlicing" || interval != "Short") {
      return Fail(c, "pod " + names[i] + " sees sharing strategy \"" + strategy + "\" interval \"" +
                         interval + "\", expected TimeSlicing/Short from the claim's config");
    }
    if (VisibleDevices(out).empty() || out.accelerator_devices.empty()) {
      return Fail(c, "pod " + names[i] + " sharing claim time-sliced sees no device");
    }
    if (i > 0 && (VisibleDevices(out) != VisibleDevices(outs[0]) ||
                  out.accelerator_devices != outs[0].accelerator_devices)) {
      return Fail(c, "pods " + names[0] + " and " + names[i] +
                         " share claim time-sliced but see different devices (" +
                         VisibleDevices(outs[0]) + " vs " + VisibleDevices(out) + ")");
    }
  }
  return true;
}

bool TimeSliceEnforced(const std::vector<std::string>& names,
                       const std::vector<InspectResult>& outs, std::string* why) {
  for (size_t i = 0; i < outs.size() && i < names.size(); ++i) {
    for (const auto& [k, v] : outs[i].accel_env) {
      if (k.ends_with("_TIMESLICE_ENFORCED") && v != "true") {
        *why = "pod " + names[i] + " sees " + k + "=" + v;
        return false;
      }
    }
  }
  return true;
}

bool JudgePartitionedPod(const InspectResult& out, CheckResult& c) {
  std::string count = PerDeviceEnv(out, "_PARTITION_COUNT");
  c.observed.push_back("pod partitioned: ACCEL_VISIBLE_DEVICES=" + VisibleDevices(out) +
                       ", partition count " + (count.empty() ? "(missing)" : count));
  if (count != "2") {
    return Fail(c, "pod partitioned (SpacePartitioning, 2 partitions) sees partition count \"" +
                       count + "\"");
  }
  return true;
}

void GpuSharing(ClusterSession& session, CheckResult& c) {
  SharingPods pods;
  if (!RequireDraApi(session, c) || !RequireDevices(session, c) ||
      !StartSharingPods(session, c, &pods) || !WaitSharingPods(session, c, &pods) ||
      !CheckSharedClaim(session, c, &pods) || !JudgeTimeSlicedPods(pods.names, pods.outs, c)) {
    return;
  }
  c.status = CheckStatus::kPass;
  c.message =
      std::to_string(pods.names.size()) + " pods share device " + pods.device + " with TimeSlicing";
  if (std::string why; !TimeSliceEnforced(pods.names, pods.outs, &why)) {
    c.status = CheckStatus::kPartial;
    c.message += ", but the time slice is only advisory on it (" + why +
                 "): partial, the interval is not enforced";
  }
  TrySpacePartitioning(session, c);
}

}  // namespace accel_dra::probe
