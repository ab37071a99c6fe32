#pragma once
// Internal to the claims core: helpers the Preparer's files (preparer.cc, prepare.cc,
// recovery.cc, time_slice.cc, claim_spec.cc) share.

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/cdi/cdi.h"
#include "accel_dra/checkpoint/checkpoint.h"
#include "accel_dra/claims/preparer.h"
#include "accel_dra/config/device_config.h"
#include "accel_dra/model/prepared_claim.h"

namespace accel_dra::claims {

using Json = nlohmann::json;

// The metrics reason of a failed ReadAllocation (see model::kClaimErrorReasons).
std::string_view ReadErrorReason(Code code);

// How every log line about one claim names it: "ResourceClaim <ns>/<name> (uid <uid>)".
std::string ClaimLog(const std::string& ns, const std::string& name, const std::string& uid);
std::string ClaimLog(const model::ClaimRef& c);

// "<namespace>/<name>".
std::string ClaimName(const model::ClaimRef& c);
// metadata.uid of a ResourceClaim, "" when missing or malformed.
std::string ClaimUid(const Json& claim);

// A ResourceClaim read from the apiserver and checked (UID, allocated, configs valid).
struct Preparer::Allocation {
  Json claim;
  // status.allocation.devices.results (an array of objects; see ResolveAllocationConfigs).
  const Json* results = nullptr;
  // The effective DeviceConfig of each of this driver's allocation-result request names.
  std::map<std::string, config::DeviceConfig> configs;
};

// Why `devices` of claim `uid` cannot be prepared next to the claims already in `state`, or "".
// A device may be held twice only when one of the two has admin access or both are distinct
// shares of a multi-allocatable device (same name). Devices are compared by name and by physical
// identity (model::PhysicalOverlap: bus ID, UUID, a device node that is neither a shared control
// node nor in `shared_nodes`), so one physical device under two names is refused too.
std::string FindConflict(const checkpoint::State& state, const std::string& uid,
                         const std::vector<model::PreparedDevice>& devices,
                         const std::set<std::string>& shared_nodes);

// What the checkpoint records about the time slice of TimeSlicing device `dev` with `interval`:
// set with nvidia-smi when the device has that control and a target, else advisory.
model::AppliedTimeSlice TimeSliceFor(const model::Device& dev, model::TimeSliceInterval interval);

// The CDI devices of a claim from its records (so a spec can be re-created after a reboot,
// without the ResourceClaim): one per physical device, in the order of the records. Device nodes
// and mounts a record lacks (format-1 checkpoints) come from `inventory`. Two records naming one
// device (shares, admin access) must agree on the sharing settings, since the CDI device is the
// same (InvalidArgument otherwise).
Expected<std::vector<cdi::ClaimSpecDevice>> SpecDevicesFor(
    const std::vector<model::PreparedDevice>& devices, const model::Inventory* inventory);

// Recovery after the checkpoint was moved aside (recovery.cc): rebuilds PrepareCompleted records
// of the claims whose CDI specs (of `cdi`'s driver) are on disk, from the specs; records them in
// `checkpoint` and keeps every spec (those that cannot be read back are named in
// report.specs_kept). What a spec does not say: request names (empty = all requests), admin
// access and share IDs (false / none); a time slice that was set is re-derived from `inventory`
// (the device's control and target; a spec whose set time slice cannot be re-derived is kept
// without a record); device nodes and the device mounts come from the spec, the pool is
// options.pool_name.
void RebuildFromSpecs(checkpoint::Checkpoint& checkpoint, cdi::CdiWriter& cdi,
                      const PreparerOptions& options, const model::Inventory* inventory,
                      const std::set<std::string>& specs, RecoveryReport& report,
                      RecoveryFailures& failures);

// The driver-info files (docs/driver-stack.md) of device `dev`: its published driverVersion and
// runtimeVersion, one value and a newline per file, under `dir`/<the two versions>/ (content-
// addressed: files are never changed once written, so a claim prepared earlier keeps its own),
// mounted at model::kDriverInfoContainerDir/{driver-version,runtime-version}. None when `dir` is
// empty or the device publishes neither version.
struct DriverInfoFile {
  model::FileMount mount;
  std::string content;
};
std::vector<DriverInfoFile> DriverInfoFilesFor(const std::string& dir, const model::Device& dev);
// Writes the files of `files` that are missing or differ (durably: a claim's spec names them).
Status EnsureDriverInfoFiles(Env* env, const std::vector<DriverInfoFile>& files);

// Recovery's failures: each is logged; the result names how many failed and the first.
class RecoveryFailures {
 public:
  void Add(const Status& st);
  Status Result() const;

 private:
  int count_ = 0;
  Status first_;
};

}  // namespace accel_dra::claims
