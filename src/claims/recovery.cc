// Recover() at start, step by step (see Preparer's promises in preparer.h).

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
  RemoveUnownedSpecs(specs, report, failures);
  if (checkpoint_->load_report().rebooted && exclusive) ReapplySettingsAfterReboot(failures);
  RestoreSpecs(exclusive, specs, report, failures);
  RETURN_IF_ERROR(checkpoint_->Sync().WithContext("checkpoint"));
  RETURN_IF_ERROR(failures.Result());
  return report;
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

}  // namespace accel_dra::claims
