#pragma once
// What the conformance checks conclude from what they saw: pure functions (no cluster), one section
// per check, each defined in that check's file (src/probe/checks/<check>.cc) and unit-tested with
// canned objects and inspect results.
//
// A verdict appends its evidence lines to result.observed; when the check must fail it sets
// result.status to kFail and result.message to the cause, and returns false. It never sets kPass
// (the check does, once every step passed).

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/common/status.h"
#include "accel_dra/probe/cluster_inventory.h"
#include "accel_dra/probe/inspect.h"
#include "accel_dra/probe/report.h"

namespace accel_dra::probe {

// Sets status kFail and the message; returns false (for `return Fail(c, ...)` in a step).
bool Fail(CheckResult& c, const std::string& message);
// Runs `body` (a check); an exception it throws fails the check with a message naming it instead
// of escaping past the clean-up (the orchestration always cleans up after a check).
void RunGuarded(CheckResult& c, const std::function<void()>& body);

// The devices a container's visible-devices variables name, merged: the driver's per-claim
// ACCEL_VISIBLE_DEVICES_<CLAIM> lists (one per claim, so two claims never collide) and the plain
// ACCEL_VISIBLE_DEVICES of older drivers, comma-separated, each device once, in the order of the
// variables' names ("" when none is set). Reported as ACCEL_VISIBLE_DEVICES.
std::string VisibleDevices(const InspectResult& out);
// The accelerator device nodes that stand for one device each: without shared control nodes
// (/dev/nvidiactl, /dev/nvidia-uvm*, /dev/nvidia-modeset, /dev/nvidia-caps/*, /dev/kfd) and without
// /dev/dri/renderD* (the render node of a /dev/dri/card*).
std::vector<std::string> PerDeviceNodes(const std::vector<std::string>& nodes);

// A FailedPrepareDynamicResources message that the kubelet retries past by itself, so it is not
// the driver's answer: the node authorizer refusing the kubelet's read of a ResourceClaim it has
// not yet linked to the pod ("no relationship found between node ..."), a race right after the
// pod is bound.
bool IsTransientPrepareFailure(std::string_view message);

// --- dra_support ---------------------------------------------------------------------------------

// resource.k8s.io/v1 serves deviceclasses, resourceclaims, resourceclaimtemplates and
// resourceslices.
bool JudgeServedDraResources(const std::vector<std::string>& served, CheckResult& c);
// A container of pod `pod` allocated `device` sees it (ACCEL_VISIBLE_DEVICES is the device and
// there is an accelerator device node).
bool JudgeDeviceInjection(const std::string& pod, const std::string& device,
                          const InspectResult& out, CheckResult& c);

// --- driver_runtime_management -------------------------------------------------------------------

struct NodeRuntime {
  std::string driver_version;  // what the node's devices publish (when the verdict passed)
  std::string warning;         // devices publish no containerRuntime* attributes ("" otherwise)
};
// The node's devices publish one driverVersion each, agree on driverVersion, containerRuntime and
// containerRuntimeVersion, and those match the Node's nodeInfo.containerRuntimeVersion
// (<runtime>://<version>); missing containerRuntime* attributes are a warning only.
bool JudgeNodeRuntime(const std::string& node, const std::vector<PoolDevice>& devices,
                      const nlohmann::json& node_object, std::string_view driver,
                      NodeRuntime* runtime, CheckResult& c);
// The next major version above `version`: "1.2.3" → "2.0.0" ("" counts as major 0). A major
// that is not a decimal number, or has no successor within 64 bits (what Kubernetes' semver
// holds), is InvalidArgument: a driver may publish anything, the probe must not crash on it.
Expected<std::string> NextMajorVersion(const std::string& version);
// The container holding `device` (pool/name, published with driverVersion `published` on `node`)
// sees a driver version, and it equals the published one.
bool JudgeContainerDriverVersion(const std::string& node, const std::string& device,
                                 const std::string& published, const InspectResult& out,
                                 CheckResult& c);

// --- gpu_sharing ---------------------------------------------------------------------------------

// Pods `names` (with their inspect outputs `outs`) share the TimeSlicing/Short claim time-sliced:
// each sees that strategy and interval, a device, and the same device as the first.
bool JudgeTimeSlicedPods(const std::vector<std::string>& names,
                         const std::vector<InspectResult>& outs, CheckResult& c);
// Whether the time slice is enforced: false when a pod's container sees
// ACCEL_DEVICE_<ID>_TIMESLICE_ENFORCED=false (the interval is only advisory on that device), with
// *why naming the pod and the variable. A driver that does not say (no such variable) counts as
// enforced. The check then reports itself partial, never pass.
bool TimeSliceEnforced(const std::vector<std::string>& names,
                       const std::vector<InspectResult>& outs, std::string* why);
// The partitioned pod (SpacePartitioning, 2 partitions) sees partition count 2.
bool JudgePartitionedPod(const InspectResult& out, CheckResult& c);

// --- secure_accelerator_access -------------------------------------------------------------------

// What one container saw, and the devices its claim was allocated (names; empty: no claim).
struct ContainerView {
  std::string pod;
  std::string container;
  std::vector<std::string> allocated;
  InspectResult out;
};
// A container with a claim sees exactly its devices (ACCEL_VISIBLE_DEVICES, ACCEL_DEVICE_<KEY>,
// one per-device node each); one without sees no device node and no ACCEL_* variable.
bool JudgeIsolation(const ContainerView& view, CheckResult& c);
// Two pods with their own claims see disjoint devices.
bool JudgeDisjoint(const ContainerView& a, const ContainerView& b, CheckResult& c);

}  // namespace accel_dra::probe
