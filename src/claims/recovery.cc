// Recover() at start, step by step (see Preparer's promises in preparer.h).

#include <chrono>
#include <map>
#include <set>

#include "accel_dra/common/log.h"
#include "preparer_internal.h"

namespace accel_dra::claims {

void RecoveryFailures::Add(const Status& st) {
  spdlog::error("recovery: {}", st.message());
  if (count_++ == 0) first_ = st;
}

Status RecoveryFailures::Result() const {
  if (count_ == 0) return Status();
  return Status(first_.code(), std::to_string(count_) +
                                   " recovery step(s) failed; the first: " + first_.message());
}

Expected<RecoveryReport> Preparer::Recover() {
  RecoveryReport report;
  RecoveryFailures failures;
  // With a shared checkpoint, an unfinished claim may be another live process's prepare or
  // unprepare in flight; only after a reboot is everything in the file surely abandoned.
  const bool exclusive = !options_.shared_checkpoint || checkpoint_->load_report().rebooted;
  if (!exclusive) {
    spdlog::info(
        "recovery: the checkpoint is shared with other plugin instances; leaving their "
        "unfinished claims to them and to kubelet's retries");
  }
  RollBackInterrupted(exclusive, report, failures);
  auto listed = cdi_->ListClaimSpecs();
  if (!listed.ok()) return listed.status();
  const std::set<std::string> specs(listed->begin(), listed->end());
  if (!checkpoint_->load_report().moved_aside_to.empty()) {
    // The checkpoint was lost: the specs on disk are all that is left of the prepared claims.
    RebuildFromSpecs(*checkpoint_, *cdi_, options_, inventory_().get(), specs, report, failures);
  } else {
    RemoveUnownedSpecs(specs, report, failures);
  }
  if (checkpoint_->load_report().rebooted && exclusive) ReapplySettingsAfterReboot(failures);
  RestoreSpecs(exclusive, specs, report, failures);
  RecoverMetadata(exclusive, report, failures);
  RETURN_IF_ERROR(checkpoint_->Sync().WithContext("checkpoint"));
  RETURN_IF_ERROR(failures.Result());
  return report;
}

namespace {

// The devices of the pool of this node a claim spec names, as PrepareCompleted records.
Expected<model::PreparedClaim> RebuildClaim(const PreparerOptions& options, cdi::CdiWriter& cdi,
                                            const std::string& uid,
                                            const model::Inventory* inventory) {
  ASSIGN_OR_RETURN(cdi::Spec spec, cdi.ReadClaimSpec(uid));
  ASSIGN_OR_RETURN(cdi::ClaimSpecContents contents,
                   cdi::ReadBackClaimSpec(options.driver_name, uid, spec));
  model::PreparedClaim claim;
  claim.ns = contents.claim.namespace_;
  claim.name = contents.claim.name;
  claim.state = model::ClaimState::kPrepareCompleted;
  ASSIGN_OR_RETURN(claim.cdi_spec_file, cdi::ClaimSpecFileName(options.driver_name, uid));
  claim.prepare_started_at = std::chrono::system_clock::now();
  claim.prepare_completed_at = claim.prepare_started_at;
  // The spec-level mounts but the inspect tool's (BuildSpec adds the current one): recorded on
  // the first device; the spec mounts them once per claim whichever device records them.
  std::vector<model::FileMount> mounts;
  for (const auto& m : contents.mounts) {
    if (m.container_path != model::kInspectToolContainerPath) mounts.push_back(m);
  }
  for (const auto& entry : contents.devices) {
    model::PreparedDevice d;  // request_names empty: all requests of the claim
    d.pool = options.pool_name;
    d.device = entry.device;
    ASSIGN_OR_RETURN(std::string id, cdi::ClaimDeviceId(options.driver_name, uid, entry.device));
    d.cdi_device_ids = {id};
    d.sharing = entry.sharing;
    if (entry.sharing.strategy == model::SharingStrategy::kTimeSlicing) {
      const model::Device* dev = inventory != nullptr ? inventory->Find(entry.device) : nullptr;
      model::AppliedTimeSlice ts;
      ts.setting = model::TimeSliceSetting(entry.sharing.interval);
      if (dev != nullptr) ts = TimeSliceFor(*dev, entry.sharing.interval);
      if (entry.timeslice_enforced && ts.control == model::TimeSliceControl::kNone) {
        return FailedPrecondition("device " + entry.device +
                                  " had its time slice set, but this node no longer says how to "
                                  "reset it (the device is not published or has no control)");
      }
      if (!entry.timeslice_enforced) ts = {model::TimeSliceControl::kNone, "", ts.setting};
      d.time_slice = ts;
    }
    d.device_nodes = entry.device_nodes;
    d.mounts = claim.devices.empty() ? mounts : std::vector<model::FileMount>{};
    claim.devices.push_back(std::move(d));
  }
  return claim;
}

}  // namespace

// The checkpoint was unusable and moved aside, so it lost the prepared claims of running pods;
// their CDI specs are still on disk. Rebuilds each claim's records from its spec and keeps the
// spec (a container restart needs it); a spec that cannot be read back is kept too, never
// deleted (the stale-claim sweep and kubelet's unprepare take care of claims that are gone).
void RebuildFromSpecs(checkpoint::Checkpoint& checkpoint, cdi::CdiWriter& cdi,
                      const PreparerOptions& options, const model::Inventory* inventory,
                      const std::set<std::string>& specs, RecoveryReport& report,
                      RecoveryFailures& failures) {
  std::map<std::string, model::PreparedClaim> rebuilt;
  for (const auto& uid : specs) {
    if (checkpoint.Find(uid)) continue;
    auto claim = RebuildClaim(options, cdi, uid, inventory);
    if (!claim.ok()) {
      auto path = cdi.ClaimSpecPath(uid);
      const std::string file = path.ok() ? path->string() : uid;
      spdlog::error(
          "recovery: keeping CDI spec {} without a checkpoint entry: its claim cannot "
          "be rebuilt: {}",
          file, claim.status().message());
      report.specs_kept.push_back(file);
      continue;
    }
    rebuilt.emplace(uid, std::move(*claim));
  }
  Status st = Status::Ok();
  if (!rebuilt.empty()) {
    st = checkpoint.Update([&](checkpoint::State& s) {
      for (const auto& [uid, claim] : rebuilt) s.claims.emplace(uid, claim);  // absent ones only
    });
  }
  if (!st.ok()) {
    failures.Add(st.WithContext("recording the claims rebuilt from their CDI specs"));
    return;
  }
  report.claims_rebuilt = static_cast<int>(rebuilt.size());
  std::string names;
  for (const auto& [uid, claim] : rebuilt) {
    names += (names.empty() ? "" : ", ") + claim.ns + "/" + claim.name + " (uid " + uid + ")";
  }
  spdlog::error(
      "recovery: the checkpoint was unusable and was moved aside to {}; rebuilt {} prepared "
      "claim(s) from their CDI specs in {}{}{}; {} spec(s) could not be rebuilt and are kept "
      "(named above). Rebuilt records lack request names (all requests), admin access and share "
      "IDs; claims that are gone are cleaned up by the stale-claim sweep",
      checkpoint.load_report().moved_aside_to.string(), rebuilt.size(), cdi.root().string(),
      names.empty() ? "" : ": ", names, report.specs_kept.size());
}

// Undoes prepares a crash interrupted.
void Preparer::RollBackInterrupted(bool exclusive, RecoveryReport& report,
                                   RecoveryFailures& failures) {
  if (!exclusive) return;
  for (const auto& [uid, claim] : checkpoint_->Snapshot().claims) {
    if (claim.state == model::ClaimState::kPrepareCompleted) continue;
    spdlog::warn("rolling back ResourceClaim {}/{} (uid {}): its prepare was interrupted", claim.ns,
                 claim.name, uid);
    std::lock_guard<std::mutex> lock(ClaimMutex(uid));
    auto now = checkpoint_->Find(uid);
    if (!now || now->state != model::ClaimState::kPrepareStarted) continue;  // changed meanwhile
    Status st = UnprepareLocked(uid, /*strict=*/false);
    if (!st.ok()) {
      failures.Add(st.WithContext("rolling back ResourceClaim " + claim.ns + "/" + claim.name));
      continue;
    }
    report.rolled_back++;
  }
}

// Removes spec files that no checkpoint entry owns.
void Preparer::RemoveUnownedSpecs(const std::set<std::string>& specs, RecoveryReport& report,
                                  RecoveryFailures& failures) {
  for (const auto& uid : specs) {
    std::lock_guard<std::mutex> lock(ClaimMutex(uid));
    if (checkpoint_->Find(uid)) continue;
    spdlog::warn("removing CDI spec of claim uid {}: no checkpoint entry owns it", uid);
    Status st = cdi_->RemoveClaimSpec(uid);
    if (!st.ok()) {
      failures.Add(st);
      continue;
    }
    report.orphan_specs_removed++;
  }
}

// Device settings do not survive a reboot: applies those of prepared claims again.
void Preparer::ReapplySettingsAfterReboot(RecoveryFailures& failures) {
  std::set<std::string> done;
  for (const auto& [uid, claim] : checkpoint_->Snapshot().claims) {
    if (claim.state != model::ClaimState::kPrepareCompleted) continue;
    for (const auto& d : claim.devices) {
      if (!d.TimeSliceEnforced() || !done.insert(d.time_slice->target).second) continue;
      Status st = SetTimeSlice(d.time_slice->target, d.time_slice->setting,
                               ClaimLog(claim.ns, claim.name, uid));
      if (!st.ok()) {
        failures.Add(st.WithContext("re-applying the time slice of ResourceClaim " + claim.ns +
                                    "/" + claim.name + " after a reboot"));
      }
    }
  }
}

// Prepared claims keep their spec: re-created when it is gone (the CDI root is usually a tmpfs
// that a reboot empties; or a crash in Unprepare removed it, and kubelet will retry), rewritten
// when it differs from what the checkpoint renders (specs are written without fsync, so a power
// loss can leave an old or empty file).
void Preparer::RestoreSpecs(bool exclusive, const std::set<std::string>& specs,
                            RecoveryReport& report, RecoveryFailures& failures) {
  model::InventoryPtr inventory;
  for (const auto& [uid, claim] : checkpoint_->Snapshot().claims) {
    if (claim.state != model::ClaimState::kPrepareCompleted) continue;
    report.completed++;
    if (!exclusive) continue;
    if (!inventory) inventory = inventory_();
    const std::string who = "ResourceClaim " + claim.ns + "/" + claim.name + " (uid " + uid + ")";
    const bool present = specs.count(uid) != 0;
    std::lock_guard<std::mutex> lock(ClaimMutex(uid));
    auto spec = BuildSpec(uid, claim.ns, claim.name, claim.devices, inventory.get());
    auto written = spec.ok() ? cdi_->SyncClaimSpec(uid, *spec) : Expected<bool>(spec.status());
    if (!written.ok()) {
      Status st = written.status().WithContext("re-creating the CDI spec of " + who);
      if (present) {  // the spec on disk still serves the running containers: keep it
        spdlog::warn("keeping the CDI spec of {} as it is: {}", who, st.message());
      } else {
        failures.Add(st);
      }
      continue;
    }
    if (!*written) continue;
    spdlog::warn("re-created the CDI spec of prepared {}: it was {}", who,
                 present ? "different from the checkpoint's record" : "missing");
    report.specs_recreated++;
  }
}

// Device-metadata specs and files follow their claim (see device_metadata.h): unowned ones go
// (any time: a prepare writes them only after its entry exists), prepared claims get their spec
// back when a reboot emptied the CDI root (only with no other live process).
void Preparer::RecoverMetadata(bool exclusive, RecoveryReport& report, RecoveryFailures& failures) {
  if (!metadata_) return;
  auto owned = metadata_->Owned();
  if (!owned.ok()) {
    failures.Add(owned.status().WithContext("listing device metadata"));
    return;
  }
  for (const auto& uid : *owned) {
    std::lock_guard<std::mutex> lock(ClaimMutex(uid));
    auto entry = checkpoint_->Find(uid);
    if (!entry) {
      spdlog::warn("removing device metadata of claim uid {}: no checkpoint entry owns it", uid);
      if (Status st = metadata_->Remove(uid); !st.ok()) {
        failures.Add(st);
        continue;
      }
      report.orphan_specs_removed++;
      continue;
    }
    if (!exclusive || entry->state != model::ClaimState::kPrepareCompleted) continue;
    auto restored = metadata_->Restore(uid);
    if (!restored.ok()) {
      failures.Add(restored.status().WithContext("re-creating the device-metadata spec of claim " +
                                                 entry->ns + "/" + entry->name));
    } else if (*restored) {
      spdlog::warn("re-created the device-metadata CDI spec of claim {}/{} (uid {})", entry->ns,
                   entry->name, uid);
    }
  }
}

}  // namespace accel_dra::claims
