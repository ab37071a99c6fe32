// Prepare of one claim, step by step (see Preparer's promises in preparer.h).

#include <chrono>
#include <set>
#include <utility>

#include "accel_dra/common/fault.h"
#include "accel_dra/common/json_path.h"
#include "accel_dra/common/log.h"
#include "preparer_internal.h"

namespace accel_dra::claims {
namespace {

// "a, b, c".
std::string CommaList(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

std::string_view ReadErrorReason(Code code) {
  switch (code) {
    case Code::kNotFound:
      return "claim_not_found";
    case Code::kInvalidArgument:
      return "invalid_config";
    case Code::kFailedPrecondition:
      return "claim_not_ready";
    default:
      return "apiserver";
  }
}

std::string FindConflict(const checkpoint::State& state, const std::string& uid,
                         const std::vector<model::PreparedDevice>& devices) {
  for (const auto& [other_uid, other] : state.claims) {
    if (other_uid == uid) continue;
    for (const auto& mine : devices) {
      for (const auto& theirs : other.devices) {
        if (mine.pool != theirs.pool || mine.device != theirs.device) continue;
        bool admin = mine.admin_access || theirs.admin_access;
        bool shares = mine.share_id && theirs.share_id && *mine.share_id != *theirs.share_id;
        if (admin || shares) continue;
        return "device " + mine.device + " is already in use by ResourceClaim " + other.ns + "/" +
               other.name + " (uid " + other_uid +
               "); a device is given to one claim at a time. The allocation may be stale: "
               "delete the pod so the scheduler allocates again, or share one claim between pods";
      }
    }
  }
  return "";
}

Expected<std::vector<model::PreparedDevice>> Preparer::PrepareLocked(const model::ClaimRef& claim,
                                                                     std::string& reason) {
  const std::string who = "ResourceClaim " + ClaimName(claim);
  reason = "checkpoint";
  // Idempotency: a completed claim is answered from the checkpoint (once it is durable).
  if (auto done = checkpoint_->Find(claim.uid);
      done && done->state == model::ClaimState::kPrepareCompleted) {
    RETURN_IF_ERROR(checkpoint_->Sync().WithContext(who + ": checkpoint"));
    return done->devices;
  }
  auto allocation_read = ReadAllocation(claim, who);
  if (!allocation_read.ok()) {
    reason = ReadErrorReason(allocation_read.status().code());
    return allocation_read.status();
  }
  Allocation allocation = std::move(allocation_read).value();
  auto inventory = inventory_();
  reason = "allocation_mismatch";
  ASSIGN_OR_RETURN(auto devices, BuildRecords(claim, who, allocation, inventory.get()));
  reason = "cdi";
  auto spec = BuildSpec(claim.uid, claim.ns, claim.name, devices, inventory.get());
  if (!spec.ok()) return spec.status().WithContext(who);
  auto spec_file = cdi::ClaimSpecFileName(options_.driver_name, claim.uid);
  if (!spec_file.ok()) return spec_file.status().WithContext(who);

  if (Status st = RecordStarted(claim, who, devices, *spec_file); !st.ok()) {
    reason = st.code() == Code::kFailedPrecondition ? "device_conflict" : "checkpoint";
    return st;
  }
  CrashPoint("prepare-after-checkpoint-started");
  // From here on a failure undoes the device settings (recorded in the PrepareStarted entry, so
  // a crash is undone by Recover()) and takes the entry out again.
  auto undo = [&] {
    Status reset = ResetTimeSlices(claim.uid, devices, ClaimLog(claim));
    if (!reset.ok()) spdlog::error("{}: {}", ClaimLog(claim), reset.message());
    RollBackStarted(claim);
  };
  if (Status st = ApplyTimeSlices(devices, ClaimLog(claim)); !st.ok()) {
    reason = "time_slice";
    undo();
    return st.WithContext(who);
  }
  CrashPoint("prepare-after-device-settings");
  if (Status st = cdi_->WriteClaimSpec(claim.uid, *spec); !st.ok()) {
    undo();  // an atomic write that failed left no file
    return st.WithContext(who + ": writing the CDI spec");
  }
  CrashPoint("prepare-after-cdi-write");
  reason = "checkpoint";
  RETURN_IF_ERROR(RecordCompleted(claim, who));
  CrashPoint("prepare-after-checkpoint-completed");
  return devices;
}

Expected<Preparer::Allocation> Preparer::ReadAllocation(const model::ClaimRef& claim,
                                                        const std::string& who) const {
  auto obj = get_claim_(claim.ns, claim.name);
  if (!obj.ok()) {
    if (obj.status().code() == Code::kNotFound) {
      return NotFound(who + " not found; it was deleted or never existed");
    }
    return Status(obj.status().code(), "cannot read " + who + ": " + obj.status().message());
  }
  Allocation a;
  a.claim = std::move(obj).value();
  std::string uid = ClaimUid(a.claim);
  if (uid != claim.uid) {
    return FailedPrecondition(who + " has " +
                              (uid.empty() ? std::string("no metadata.uid") : "UID " + uid) +
                              " but kubelet asked for UID " + claim.uid +
                              ": the claim was deleted and re-created; the pod must be re-created");
  }
  const Json* alloc_devices = JsonAt(a.claim, {"status", "allocation", "devices"});
  if (alloc_devices == nullptr || JsonAt(*alloc_devices, {"results"}) == nullptr) {
    return FailedPrecondition(who + " is not allocated; the scheduler has not placed it yet");
  }
  // Also checks that results[] is an array of objects and that our results name a request.
  auto configs = config::ResolveAllocationConfigs(*alloc_devices, options_.driver_name);
  if (!configs.ok()) return InvalidArgument(who + ": " + configs.status().message());
  a.configs = std::move(configs).value();
  a.results = &alloc_devices->at("results");
  return a;
}

Expected<model::PreparedDevice> Preparer::RecordFor(const model::ClaimRef& claim,
                                                    const std::string& who, const Json& result,
                                                    const Allocation& allocation,
                                                    const model::Inventory* inventory) const {
  std::string pool = JsonString(result, {"pool"});
  std::string device = JsonString(result, {"device"});
  std::string request = JsonString(result, {"request"});
  if (pool != options_.pool_name) {
    return FailedPrecondition(who + ": device " + device + " is allocated from pool " + pool +
                              ", but this plugin serves pool " + options_.pool_name +
                              " (another node); the claim cannot be used on this node");
  }
  const model::Device* dev = inventory != nullptr ? inventory->Find(device) : nullptr;
  if (dev == nullptr) {
    return FailedPrecondition(who + ": device " + device +
                              " is not published by this node (it may have been removed or "
                              "the allocation is stale); delete the pod to allocate again");
  }
  model::PreparedDevice d;
  d.request_names = {BaseRequestName(request)};
  d.pool = pool;
  d.device = device;
  if (const Json* share = JsonAt(result, {"shareID"}); share != nullptr && share->is_string()) {
    d.share_id = share->get<std::string>();
  }
  auto id = cdi::ClaimDeviceId(options_.driver_name, claim.uid, device);
  if (!id.ok()) return id.status().WithContext(who);
  d.cdi_device_ids = {*id};
  // Everything needed to re-create the CDI spec without the claim (see Recover()).
  auto cfg = allocation.configs.find(request);
  if (cfg != allocation.configs.end()) d.sharing = cfg->second;
  d.admin_access = JsonBool(result, {"adminAccess"});
  if (d.sharing.strategy == model::SharingStrategy::kTimeSlicing) {
    d.time_slice = TimeSliceFor(*dev, d.sharing.interval);
  }
  d.device_nodes = dev->device_nodes;
  d.mounts = dev->read_only_mounts;
  return d;
}

Expected<std::vector<model::PreparedDevice>> Preparer::BuildRecords(
    const model::ClaimRef& claim, const std::string& who, const Allocation& allocation,
    const model::Inventory* inventory) const {
  std::vector<model::PreparedDevice> out;
  std::set<std::string> advisory;  // TimeSlicing devices whose time slice cannot be set
  std::set<std::string> other_drivers;
  for (const auto& result : *allocation.results) {
    std::string driver = JsonString(result, {"driver"});
    if (driver != options_.driver_name) {
      other_drivers.insert(driver);
      continue;
    }
    ASSIGN_OR_RETURN(model::PreparedDevice d, RecordFor(claim, who, result, allocation, inventory));
    if (d.time_slice && !d.TimeSliceEnforced()) advisory.insert(d.device);
    out.push_back(std::move(d));
  }
  if (out.empty()) {
    std::string others = CommaList(other_drivers);
    return FailedPrecondition(who + " has no devices of driver " + options_.driver_name +
                              (others.empty() ? "" : " (its devices belong to: " + others + ")"));
  }
  if (!advisory.empty()) {
    spdlog::info(
        "{}: the TimeSlicing interval is advisory on device(s) {}: their time slice cannot be "
        "set by the driver (containers see ..._TIMESLICE_ENFORCED=false)",
        ClaimLog(claim), CommaList(advisory));
  }
  return out;
}

Status Preparer::RecordStarted(const model::ClaimRef& claim, const std::string& who,
                               const std::vector<model::PreparedDevice>& devices,
                               const std::string& spec_file) {
  // Record the intent (and claim the devices) before any side effect. Visible, not durable: it
  // must survive a crash of this process, but after a power loss the CDI spec (written without
  // fsync) is gone or an unowned file that Recover() removes, so there is nothing to roll back.
  std::string conflict;
  bool recorded = false;
  Status st = checkpoint_->Update(
      [&](checkpoint::State& s) {
        conflict = FindConflict(s, claim.uid, devices);
        if (!conflict.empty()) return;
        model::PreparedClaim pc;
        pc.ns = claim.ns;
        pc.name = claim.name;
        pc.state = model::ClaimState::kPrepareStarted;
        pc.devices = devices;
        pc.cdi_spec_file = spec_file;
        pc.prepare_started_at = std::chrono::system_clock::now();
        s.claims[claim.uid] = std::move(pc);
        recorded = true;
      },
      Durability::kVisible);
  if (!conflict.empty()) return FailedPrecondition(who + ": " + conflict);
  if (!st.ok()) {
    // The entry stays in memory after a failed write; it must not hold the devices.
    if (recorded) RollBackStarted(claim);
    return st.WithContext(who + ": recording the claim in the checkpoint");
  }
  return Status();
}

void Preparer::RollBackStarted(const model::ClaimRef& claim) {
  Status undo = checkpoint_->Update([&](checkpoint::State& s) { s.claims.erase(claim.uid); });
  if (!undo.ok())
    spdlog::warn("rolling back {} in the checkpoint: {}", ClaimLog(claim), undo.message());
}

Status Preparer::RecordCompleted(const model::ClaimRef& claim, const std::string& who) {
  bool vanished = false;
  Status st = checkpoint_->Update([&](checkpoint::State& s) {
    auto it = s.claims.find(claim.uid);
    if (it == s.claims.end()) {
      vanished = true;  // another plugin instance unprepared or rolled it back meanwhile
      return;
    }
    it->second.state = model::ClaimState::kPrepareCompleted;
    it->second.prepare_completed_at = std::chrono::system_clock::now();
  });
  if (st.ok() && vanished) {
    (void)cdi_->RemoveClaimSpec(claim.uid);
    return Status(Code::kConflict, who +
                                       " was unprepared by another plugin instance while this "
                                       "one prepared it; kubelet will retry");
  }
  // On failure memory says PrepareCompleted (with its spec): a retry answers once a Sync()
  // succeeds; a crash leaves PrepareStarted on disk, which Recover() rolls back.
  if (!st.ok()) return st.WithContext(who + ": recording the prepared claim in the checkpoint");
  return Status();
}

}  // namespace accel_dra::claims
