#pragma once
// Preparer: the version-free core behind NodePrepareResources / NodeUnprepareResources.
//
// Promises (per claim; claims of one call are prepared in parallel):
//  - Prepare reads the ResourceClaim from the apiserver, checks that its UID is the one kubelet
//    named and that it is allocated, keeps the results of this driver, and refuses results that
//    name another pool (node) or a device this node does not publish, with a message saying so.
//  - A device that another prepared claim holds is refused, unless one of the two results has
//    admin access or both are shares of a multi-allocatable device (distinct share IDs). "Holds"
//    is checked by name and by physical identity (PCI bus ID, UUID, a device node of its own), so
//    a device renamed since the other claim was prepared is refused too.
//  - A prepared claim whose device vanished from the inventory or is another physical device now
//    (same name, other bus ID or UUID) is not answered from the checkpoint: kubelet gets an error
//    saying which device and what to do.
//  - Opaque configs of this driver are resolved (a claim config beats a class config; within a
//    source, the exact request name beats the base request name, which beats an empty request
//    list; see config/device_config.h) and validated strictly; a bad config fails the claim with
//    the parser's message.
//  - The claim is recorded as PrepareStarted in the checkpoint before any side effect, its CDI
//    spec is written atomically, then it is recorded PrepareCompleted; only then is it answered.
//  - Prepare is idempotent: a completed claim is answered from the checkpoint without new side
//    effects, once a read of the claim shows that its allocation is still the one recorded (same
//    UID; the same devices of this driver: request, pool, device, share ID). A
//    stale record (the claim was deallocated and allocated again, re-created with another UID,
//    or is no longer allocated here) is unprepared and the claim prepared afresh, which reports
//    why it cannot be when it cannot. A failed read, including a claim the apiserver reports
//    gone, keeps the answer from the checkpoint (logged; a gone claim is the sweep's to clean).
//  - Operations on one claim run one at a time in arrival order (a FIFO per claim; the claims of
//    one call arrive together and are prepared in parallel). An unprepare wins over a prepare
//    that arrived before it completed: such a prepare either ran first (and the unprepare removed
//    what it did) or is refused (Conflict; kubelet retries if it still wants the claim).
//  - Prepare honours the caller's deadline and cancellation (model::CallContext): it checks them
//    when its turn comes and before each side effect (recording PrepareStarted, applying time
//    slices, writing the CDI spec, recording PrepareCompleted); a caller that gave up gets
//    DeadlineExceeded or Cancelled for the claim and what the prepare did so far is rolled back.
//  - A prepare that fails leaves neither a checkpoint entry nor a CDI spec behind, so it holds no
//    device (a checkpoint write that failed is corrected in memory at once, on disk by the next
//    successful write or by Recover()).
//  - Two results of one claim may name the same device (shares, admin access): they get one CDI
//    device, and must then agree on the sharing settings.
//  - Prioritized list: a result of a firstAvailable subrequest names "<request>/<subrequest>".
//    kubelet is answered (and the checkpoint records) the base request name only (what kubelet
//    matches containers' resources.claims[].request against); configs are resolved by the full
//    name ("<request>" covers every subrequest, "<request>/<sub>" only that one); the idempotency
//    check compares base names. Request names appear in no CDI name or variable.
//  - Admin access (adminAccess: true in the result): the device is prepared without being taken
//    (it never conflicts with another claim's hold, in either direction) and without changing it:
//    a TimeSlicing interval is advisory (..._TIMESLICE_ENFORCED=false), so preparing or
//    unpreparing an admin-access claim never sets or resets the time slice of a device another
//    claim holds.
//  - TimeSlicing on a device whose time slice the driver controls (model::TimeSliceControl,
//    e.g. NVIDIA GPUs: `nvidia-smi compute-policy -i <id> --set-timeslice <0..3>`, Default=0,
//    Short=1, Medium=2, Long=3) is applied after PrepareStarted is recorded (the record names
//    the device and setting) and before the CDI spec is written; the container gets
//    ACCEL_DEVICE_<ID>_TIMESLICE_ENFORCED=true. On other devices the setting is advisory: logged
//    once per claim, ..._TIMESLICE_ENFORCED=false. A failing command fails the claim with the
//    command and its output tail; what was applied is reset (see below) and the claim rolled back.
//  - The time slice of a device is reset to the default (0) when the last claim in the checkpoint
//    that applied one to it is unprepared or rolled back (also by Recover(): a crash between
//    applying and PrepareCompleted leaves no non-default setting behind). A failing reset fails
//    the unprepare (the entry is kept so that kubelet's retry resets it), except in Recover(),
//    which logs it and goes on. After a reboot Recover() applies the settings of prepared claims
//    again (they do not survive a reboot).
//  - With device_metadata (--device-metadata, KEP-5304; see claims/device_metadata.h), each
//    request's first device also carries the CDI ID `<driver>/metadata=<claimUID>_<request>`
//    (recorded with the claim), and the metadata files and their CDI spec are written right after
//    the claim's CDI spec, in the same step: a failure there fails the prepare and leaves neither.
//  - Unprepare removes the CDI spec (and the device-metadata spec and files) and the checkpoint
//    entry; an unknown claim succeeds.
//  - Recover() (at start) rolls back claims left PrepareStarted by a crash, removes CDI specs
//    that no checkpoint entry owns, and re-creates the CDI spec of a PrepareCompleted claim whose
//    file is missing (the CDI root is usually a tmpfs that a reboot empties, and kubelet does not
//    prepare a claim again that it considers prepared; a crash inside Unprepare can also leave
//    it so). The checkpoint records what that needs (sharing settings, device nodes, the
//    devices' read-only file mounts). Afterwards
//    a claim's spec file exists iff the checkpoint holds the claim PrepareCompleted. Recover()
//    goes through every claim even when one step fails, then reports the first failure.
//    Device-metadata specs and files follow the claim: removed when no entry owns them (or the
//    entry is rolled back), the spec re-created from the files when it is missing.
//  - When the checkpoint was unusable and moved aside (load_report().moved_aside_to), Recover()
//    removes no spec: it rebuilds PrepareCompleted records from this driver's CDI specs on disk
//    (so containers of running pods can still restart, and kubelet's unprepare works), records
//    them, and logs an error naming the moved-aside file and the rebuilt claims; a spec that
//    cannot be read back is kept and named (RecoveryReport::specs_kept). What a rebuilt record
//    lacks is listed at RebuildFromSpecs (preparer_internal.h). Claims that are gone are cleaned
//    up later by CleanupStale().
//  - CleanupStale() unprepares prepared claims whose ResourceClaim is gone (the apiserver's own
//    NotFound for it; a bare 404 proves nothing), was re-created with another UID, or is no longer
//    allocated to this node's pool (allocation cleared, or no result of this driver names this
//    pool). It acts only when a second read, stale_confirm_delay after the first and in the
//    claim's turn, says so too and the record is still the one judged; any read error keeps the
//    claim (tried again next time). Claims still PrepareStarted are left to their prepare.
//  - Failures are per claim and never stop the process; every message says what is wrong.
//  - Every prepare and unprepare of a claim is reported to Metrics() (common/metrics.h) with its
//    duration and, on failure, a reason: for prepare claim_not_found, claim_not_ready (not
//    allocated, UID changed), invalid_config (also a malformed allocation), apiserver (reading
//    the claim failed otherwise), allocation_mismatch (another pool, a device not published
//    here, no device of this driver), device_conflict, device_vanished (a prepared claim's
//    device vanished or is another physical device now), cancelled (the caller gave up, or an
//    unprepare of the claim won), checkpoint, time_slice, cdi, internal; for unprepare
//    unprepare_failed. Log lines about one claim name it as
//    `claim=<namespace>/<name> uid=<uid>`.
//    Nothing throws: a malformed ResourceClaim is a per-claim error.

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "accel_dra/cdi/cdi.h"
#include "accel_dra/checkpoint/checkpoint.h"
#include "accel_dra/claims/claim_turns.h"
#include "accel_dra/claims/device_metadata.h"
#include "accel_dra/common/command.h"
#include "accel_dra/model/claim.h"
#include "accel_dra/model/device.h"
#include "accel_dra/model/prepared_claim.h"

namespace accel_dra::claims {

// Reads a ResourceClaim (v1 shape). NotFound only when the apiserver says it does not exist (a
// Status NotFound naming it); any other failure, a bare HTTP 404 included, is another code.
using ClaimGetter =
    std::function<Expected<nlohmann::json>(const std::string& ns, const std::string& name)>;
// The node's current devices.
using InventorySource = std::function<model::InventoryPtr()>;

struct PreparerOptions {
  std::string driver_name = "accel-dra.dev";
  std::string pool_name;  // this node's pool (the node name)
  // The checkpoint is shared with another live plugin process (rolling update, --pod-uid).
  // Recover() then leaves PrepareStarted claims and missing specs of prepared claims alone,
  // because they may be another process's work in flight; it still removes unowned specs (a
  // spec never exists without its entry while a prepare or unprepare runs). After a reboot no
  // other process can be mid-operation, so the full recovery runs.
  bool shared_checkpoint = false;
  // Host path of the inspect tool (--inspect-tool): every claim spec mounts it read-only at
  // model::kInspectToolContainerPath. Empty: no such mount.
  std::string inspect_tool;
  // Host path of the stand-in vendor tool (--smi-tool, accel-dra-smi): mounted like the inspect
  // tool, at model::kSmiToolContainerPath. Empty: no such mount.
  std::string smi_tool;
  // Where the driver-info files live (the plugin passes <plugin data dir>/driver-info): each
  // device's containers get its published driverVersion and runtimeVersion as files under
  // model::kDriverInfoContainerDir (docs/driver-stack.md). Empty: no such files.
  std::string driver_info_dir;
  // TESTING ONLY (--testing-expose-all-devices): every claim spec also exposes the device nodes
  // of all other devices of the node and lists them in the claim's ACCEL_VISIBLE_DEVICES_<CLAIM>
  // (an isolation breach on purpose, for the conformance probe's negative test).
  bool testing_expose_all_devices = false;
  // Runs nvidia-smi for TimeSlicing on devices with TimeSliceControl::kNvidiaSmi; null: the real
  // runner. `nvidia_smi` is the program (searched on PATH unless it has a '/').
  CommandRunner* runner = nullptr;
  std::string nvidia_smi = "nvidia-smi";
  std::chrono::milliseconds command_timeout{30000};
  // CleanupStale() reads a claim that looks stale a second time this long after the first read
  // (one pause per sweep, only when a claim looks stale) and acts only when both agree.
  std::chrono::milliseconds stale_confirm_delay{1000};
  // Sleeps for the sweep's pause; null: std::this_thread::sleep_for (a test seam).
  std::function<void(std::chrono::milliseconds)> sleep;
  // KEP-5304 device metadata (claims/device_metadata.h): where the files live (the plugin passes
  // <plugin data dir>/dra-device-metadata). Empty: the feature is unavailable and nothing of it
  // is touched. `device_metadata` writes them for new prepares; with it off, files of claims
  // prepared earlier are still removed on unprepare and by recovery.
  std::string device_metadata_dir;
  bool device_metadata = false;
  // The device-metadata CDI specs go to this root; empty: the claim specs' root.
  std::string device_metadata_cdi_root;
};

class RecoveryFailures;  // preparer_internal.h

struct RecoveryReport {
  int rolled_back = 0;           // PrepareStarted claims undone
  int orphan_specs_removed = 0;  // (and claims' unowned device-metadata specs and files)
  int completed = 0;             // PrepareCompleted claims kept
  int specs_recreated = 0;       // of those, claims whose missing CDI spec was written again
  // Only after the checkpoint was moved aside (corrupt or newer): claims rebuilt from their CDI
  // specs, and spec files kept although no record could be rebuilt from them.
  int claims_rebuilt = 0;
  std::vector<std::string> specs_kept;
};

class Preparer : public model::ClaimPreparer {
 public:
  Preparer(PreparerOptions options, ClaimGetter get_claim, InventorySource inventory,
           checkpoint::Checkpoint* checkpoint, cdi::CdiWriter* cdi);

  // The answer's devices are the claim's full records; the kubelet adapters send their wire
  // fields.
  using model::ClaimPreparer::Prepare;
  std::map<std::string, model::PrepareResult> Prepare(const std::vector<model::ClaimRef>& claims,
                                                      const model::CallContext& context) override;
  std::map<std::string, std::string> Unprepare(const std::vector<model::ClaimRef>& claims) override;

  Expected<RecoveryReport> Recover();
  // Returns the number of claims cleaned up.
  int CleanupStale();

  // Operations on claim `uid` that have arrived and not finished (running or waiting their turn);
  // for tests and diagnostics.
  size_t InLine(const std::string& uid) const;

 private:
  struct Allocation;  // a claim read and checked (preparer_internal.h)
  struct Stale;       // a prepared claim that looks stale to the sweep (preparer.cc)

  model::PrepareResult PrepareOne(const model::ClaimRef& claim, ClaimTurns::Turn& turn,
                                  const model::CallContext& context);
  std::string UnprepareOne(const model::ClaimRef& claim, ClaimTurns::Turn& turn);

  // Prepare (prepare.cc), in the claim's turn and under its mutex, step by step: answer a
  // completed claim whose allocation is unchanged from the checkpoint, else read and check the
  // claim, build its records, record PrepareStarted, apply device settings, write the CDI spec,
  // record PrepareCompleted, checking `context` before each side effect. `who` names the claim.
  // On failure `reason` names the step that failed (the metrics reason, see
  // MetricsRecorder::ClaimOperationDone).
  Expected<std::vector<model::PreparedDevice>> PrepareLocked(const model::ClaimRef& claim,
                                                             const model::CallContext& context,
                                                             std::string& reason);
  // The idempotent path: the record's devices when the claim's allocation is still the one
  // recorded (or the claim cannot be read); nullopt after unpreparing a stale record, with the
  // claim just read in `*read` (empty when none was read).
  Expected<std::optional<std::vector<model::PreparedDevice>>> AnswerFromCheckpoint(
      const model::ClaimRef& claim, const std::string& who, const model::PreparedClaim& record,
      const model::CallContext& context, std::optional<nlohmann::json>* read);
  Expected<std::vector<model::PreparedDevice>> PrepareFresh(const model::ClaimRef& claim,
                                                            const std::string& who,
                                                            Allocation allocation,
                                                            const model::CallContext& context,
                                                            std::string& reason);
  // GET the claim; errors say what the answer means for the claim (a bare 404 is not "deleted").
  Expected<nlohmann::json> ReadClaim(const model::ClaimRef& claim, const std::string& who) const;
  // The claim read and checked: UID, allocated, this driver's configs valid.
  Expected<Allocation> CheckAllocation(const model::ClaimRef& claim, const std::string& who,
                                       nlohmann::json obj) const;
  // Why the record's devices are not the claim's current allocation ("" when they are).
  std::string AllocationMismatch(const model::ClaimRef& claim, const nlohmann::json& obj,
                                 const std::vector<model::PreparedDevice>& recorded) const;
  // Why the sweep should clean up prepared claim `uid` (record `claim`), from one read of it; ""
  // when it should not (also on any read error, which is logged).
  std::string StaleReason(const std::string& uid, const model::PreparedClaim& claim) const;
  // The second look at a claim that looked stale, in its turn; true when it was cleaned up.
  bool ConfirmAndCleanUp(const std::string& uid, const model::PreparedClaim& claim);
  // The record of one allocation result of this driver.
  Expected<model::PreparedDevice> RecordFor(const model::ClaimRef& claim, const std::string& who,
                                            const nlohmann::json& result,
                                            const Allocation& allocation,
                                            const model::Inventory* inventory) const;
  Expected<std::vector<model::PreparedDevice>> BuildRecords(
      const model::ClaimRef& claim, const std::string& who, const Allocation& allocation,
      const model::Inventory* inventory) const;
  // Records the claim PrepareStarted (visible, not durable) unless a device conflicts (by name
  // or physical identity; `shared_nodes`: the inventory's nodes that identify no one device).
  Status RecordStarted(const model::ClaimRef& claim, const std::string& who,
                       const std::vector<model::PreparedDevice>& devices,
                       const std::string& spec_file, const std::set<std::string>& shared_nodes);
  // A PrepareCompleted claim whose device vanished from the inventory or is another physical
  // device now (model::CheckHeldDevice) fails with what happened and what to do.
  Status CheckHeldDevices(const model::ClaimRef& claim, const std::string& who) const;
  // Takes the PrepareStarted entry out again (errors are logged: memory is right, and the next
  // successful write or Recover() makes the disk agree).
  void RollBackStarted(const model::ClaimRef& claim);
  Status RecordCompleted(const model::ClaimRef& claim, const std::string& who);

  // `strict`: a failing time-slice reset fails the unprepare (else it is logged).
  Status UnprepareLocked(const std::string& uid, bool strict = true);

  // Recover() (recovery.cc), step by step. `exclusive`: no other live process shares the
  // checkpoint, so unfinished work is abandoned and may be undone or redone.
  void RollBackInterrupted(bool exclusive, RecoveryReport& report, RecoveryFailures& failures);
  void RemoveUnownedSpecs(const std::set<std::string>& specs, RecoveryReport& report,
                          RecoveryFailures& failures);
  void ReapplySettingsAfterReboot(RecoveryFailures& failures);
  void RestoreSpecs(bool exclusive, const std::set<std::string>& specs, RecoveryReport& report,
                    RecoveryFailures& failures);
  // Device metadata: removes what no entry owns, re-creates missing specs of prepared claims.
  void RecoverMetadata(bool exclusive, RecoveryReport& report, RecoveryFailures& failures);
  // Writes the claim's device-metadata files and spec when device_metadata is on.
  // The driver-info files of the claim's devices (options_.driver_info_dir), before its spec.
  Status WriteDriverInfo(const std::vector<model::PreparedDevice>& devices,
                         const model::Inventory* inventory);
  Status WriteMetadata(const model::ClaimRef& claim, const Allocation& allocation,
                       const std::vector<model::PreparedDevice>& devices,
                       const model::Inventory* inventory);
  // Removes the claim's device-metadata spec and files (logged on failure; Recover() retries).
  void RemoveMetadataLogged(const model::ClaimRef& claim);

  // Time slices (time_slice.cc). Runs nvidia-smi to set `setting` (0..3) on `target`; the log
  // line names `for_claim` (the claim it is done for, as ClaimLog() names it).
  Status SetTimeSlice(const std::string& target, int setting, const std::string& for_claim);
  // Applies the time slices `devices` record (each device once); the first failure names it.
  Status ApplyTimeSlices(const std::vector<model::PreparedDevice>& devices,
                         const std::string& for_claim);
  // Resets the time slice of the devices of `devices` that no other claim than `uid` in the
  // checkpoint has a setting on. Returns the first failure (after trying all).
  Status ResetTimeSlices(const std::string& uid, const std::vector<model::PreparedDevice>& devices,
                         const std::string& for_claim);

  // The claim's CDI spec from its records plus the options' extras (claim_spec.cc).
  Expected<cdi::Spec> BuildSpec(const std::string& uid, const std::string& ns,
                                const std::string& name,
                                const std::vector<model::PreparedDevice>& devices,
                                const model::Inventory* inventory) const;
  // Mutual exclusion with Recover()'s steps (recovery.cc); prepare and unprepare take it inside
  // their turn, so it never decides their order.
  std::mutex& ClaimMutex(const std::string& uid);

  PreparerOptions options_;
  ClaimGetter get_claim_;
  InventorySource inventory_;
  checkpoint::Checkpoint* checkpoint_;
  cdi::CdiWriter* cdi_;
  std::optional<DeviceMetadataFiles> metadata_;  // set when options_.device_metadata_dir is
  static constexpr size_t kStripes = 64;
  std::array<std::mutex, kStripes> claim_mutexes_;
  mutable ClaimTurns turns_;  // arrival order per claim
};

// "main/sub" → "main".
std::string BaseRequestName(const std::string& request);

}  // namespace accel_dra::claims
