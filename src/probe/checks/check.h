#pragma once
// The conformance checks, one file each in this folder, and the steps they share.
//
// A check is a function of the cluster session and its result. It promises:
//  - to fill result.status (kPass or kFail) and result.message (on failure: the cause, e.g. the
//    scheduler's reason, the kubelet's event, the value that differed), and result.ran /
//    result.observed in the order things happened (the session adds result.manifests);
//  - to return at the first failed step; a wait the stop flag cut short is such a failure, and the
//    orchestration (runner.cc) then reports the check as interrupted;
//  - to leave its pods and claims behind: the orchestration releases them before the next check.
// Its steps are functions returning false after Fail(); the pure verdicts they apply to what was
// seen are in include/accel_dra/probe/verdicts.h (unit-tested without a cluster).

#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/probe/report.h"
#include "cluster_session.h"

namespace accel_dra::probe {

using CheckFn = void (*)(ClusterSession& session, CheckResult& result);

void DraSupport(ClusterSession& session, CheckResult& result);               // dra_support.cc
void DriverRuntimeManagement(ClusterSession& session, CheckResult& result);  // driver_runtime.cc
void GpuSharing(ClusterSession& session, CheckResult& result);               // gpu_sharing.cc
void SecureAcceleratorAccess(ClusterSession& session, CheckResult& result);  // secure_access.cc

// --- shared steps (check.cc) ---------------------------------------------------------------------

// Fails when resource.k8s.io is not served (the discovery error is the message).
bool RequireDraApi(const ClusterSession& session, CheckResult& c);
// Fails when no node offers a complete pool of the driver: pods could only time out, so it says
// why at once.
bool RequireDevices(ClusterSession& session, CheckResult& c);
// The device names ("pool/device" → "device") of a claim's allocation.
std::vector<std::string> DeviceNames(const std::vector<std::string>& pool_devices);

}  // namespace accel_dra::probe
