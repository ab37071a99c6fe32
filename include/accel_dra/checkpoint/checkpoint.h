#pragma once
// The plugin's durable record of the ResourceClaims it has prepared on this node, so that a restart
// (or a crash at any instant) recovers exactly what was prepared.
//
// Promises:
//  - One file, <data dir>/checkpoint.json, replaced only through Env::WriteFileAtomic (mode 0600):
//    after a crash it holds either the state before or the state after a write, never a mix.
//  - The file holds typed prepared-claim records (model/prepared_claim.h), in format
//    kCurrentFormatVersion; files of every earlier format are read, and the next write replaces
//    them with the current format. Its checksum covers the exact bytes on disk (see "Format
//    history"), so one changed byte, even whitespace, makes the file unusable, and nothing but the
//    bytes decides whether a file is intact.
//  - Update() returns only after a write that contains its mutation is durable (group commit:
//    concurrent callers in one process share one write). See Update() for what an error means.
//  - A missing file is an empty state. A file that cannot be used (not JSON, checksum mismatch,
//    missing or malformed fields, truncated, or a format version newer than this build reads) is
//    moved aside to checkpoint.json.corrupt-<unix seconds> and Open() succeeds with an empty state
//    and a loud warning in load_report(): the plugin must not crash-loop on a bad checkpoint. A
//    file that cannot be read at all (EACCES, EIO) is an Open() error; nothing is moved.
//  - Writers never interleave. In exclusive mode (the default) exactly one process owns the
//    checkpoint: Open() holds an exclusive flock on <data dir>/checkpoint.lock (holding our pid for
//    diagnostics) until destruction. In shared mode (OpenOptions::shared) several processes use
//    the checkpoint side by side and each operation is a transaction under that flock; see
//    "Shared mode" below.
//  - A checkpoint written under a different boot ID (/proc/sys/kernel/random/boot_id) is loaded
//    (kubelet still considers the claims prepared after a node reboot) but load_report().rebooted
//    is set: device state that does not survive a reboot (time-slice settings, partitions) must be
//    re-created from the claims; then call Sync() to record the new boot ID.
//  - Every method is safe to call from many threads at once.
//
// Shared mode (OpenOptions::shared; the plugin enables it when --pod-uid is set, so that the old
// and the new pod of a DaemonSet rolling update with maxSurge serve kubelet side by side):
//  - Open() takes the exclusive flock only while it removes temp files and loads the file (moving
//    a bad one aside exactly as in exclusive mode), then releases it.
//  - Update() and Sync() take the flock exclusively, re-read the file if another process (or
//    another Checkpoint object) replaced it since this object last read or wrote it, apply the
//    mutations to that fresh state, write durably and unlock. So a mutation always sees every
//    mutation made before it by any process, and a conflict check inside `mutate` is reliable.
//    Group commit survives within a process: Update()s that queue while a write is in flight are
//    applied, in arrival order, by the next writer after its re-read, and share one write.
//  - Snapshot() and Find() take the flock shared and re-read the file if it changed.
//  - The change check is a stat() of checkpoint.json (device, inode, size, mtime in ns) compared
//    with the file this object last read or wrote, of which it keeps a descriptor open so that
//    the inode number cannot be reused. The lock file and this stat bypass `env`.
//  - Cost: per operation, an open/flock/close of the lock file and a stat(); a re-read and parse
//    of the whole file after another process wrote; writers of different processes (and readers
//    while a write is in flight) wait for each other, each up to lock_timeout. Waiting is fair:
//    waiters queue in turn (a turnstile beside the flock), so a busy process cannot starve
//    another past lock_timeout by re-locking the instant it unlocks.
//  - An exclusive-mode process and shared-mode processes exclude each other: an exclusive Open()
//    waits (up to its lock_timeout) only for the shared users' operation in progress, then owns
//    the checkpoint; until it closes, shared Open(), Update() and Sync() fail after their
//    lock_timeout with the FailedPrecondition "another accel-dra plugin process ... holds ..."
//    (and Snapshot()/Find() serve the last state read; see there). A shared Open() likewise fails
//    while an exclusive owner lives. The checkpoint stays consistent either way.
//
// Format history (loaders are kept for every version; tests/fixtures/checkpoint holds files of
// each, which must load forever). Every format is one JSON object whose top-level integer member
// "version" names the format, so that any build tells a newer file from a corrupt one.
//   1 (accel-dra 0.1.0): {"version": 1, "checksum": ..., "data": {...}}; the CRC-32C covers the
//     canonical re-serialisation of the parsed "data" (so it depended on the JSON library), and a
//     device's settings were free-form JSON ("config"). See src/checkpoint/format_v1.cc.
//   2: a fixed 47-byte header `{"version": 2, "checksum": "<crc32c, 8 lowercase hex>", "data": `,
//     the payload, and the trailer `}` + LF. The CRC-32C covers exactly the payload bytes, checked
//     before anything is parsed; the payload holds typed records (sharing settings, admin access,
//     applied time slice, device nodes, mounts). See src/checkpoint/format_v2.cc.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "accel_dra/common/env.h"
#include "accel_dra/common/status.h"
#include "accel_dra/model/prepared_claim.h"

namespace accel_dra::checkpoint {

using TimePoint = std::chrono::system_clock::time_point;

inline constexpr int kCurrentFormatVersion = 2;
inline constexpr std::string_view kCheckpointFileName = "checkpoint.json";
inline constexpr std::string_view kLockFileName = "checkpoint.lock";

// The checkpointed state: prepared claims by claim UID.
struct State {
  std::map<std::string, model::PreparedClaim, std::less<>> claims;

  friend bool operator==(const State&, const State&) = default;
};

// How Open() found the file on disk.
struct LoadReport {
  // Set when the file was unusable and moved aside (DataLoss for corruption, FailedPrecondition
  // for a newer format). The message names the file and where it went. Log it loudly; the
  // checkpoint starts empty (claims::Preparer::Recover() then rebuilds the prepared claims from
  // their CDI specs, and the plugin reports it on its health service).
  std::optional<Status> warning;
  std::filesystem::path moved_aside_to;  // empty unless moved aside
  // The file was written under another boot ID: the node rebooted since. Claims are kept.
  bool rebooted = false;
  std::string previous_boot_id;         // boot ID stored in the file ("" when nothing loaded)
  std::string previous_writer_version;  // writer version stored in the file ("" when none)
  int format_version = 0;               // format of the loaded file (0 when nothing loaded)
  int removed_temp_files = 0;           // leftovers of writes interrupted by a crash
};

// Counters for metrics and tests.
struct Stats {
  uint64_t updates = 0;        // Update() calls
  uint64_t writes = 0;         // write attempts (each may carry many updates)
  uint64_t failed_writes = 0;  // write attempts that failed
  // Shared mode only: re-reads of a file someone else replaced, and Snapshot()/Find() calls that
  // served the last state read because the lock or the file could not be had.
  uint64_t reloads = 0;
  uint64_t stale_reads = 0;
};

struct OpenOptions {
  // How long Open() waits for another process to release the lock (polling, at most every
  // 100 ms). In shared mode also how long each operation waits for the lock.
  std::chrono::milliseconds lock_timeout{10000};
  // Share the checkpoint with other processes (see "Shared mode" above) instead of owning it.
  bool shared = false;
  // Stored in the file as the writer's version; empty = this build's version.
  std::string writer_version;
};

class Checkpoint {
 public:
  // Creates `data_dir` if needed, locks it, reads the boot ID under `host_root` and loads the
  // checkpoint (see the promises above). Fails with FailedPrecondition when another process still
  // holds the lock after `lock_timeout` ("another accel-dra plugin process (pid N?) holds ...") or
  // the boot ID cannot be read; with the I/O error when the data directory, the lock file or the
  // checkpoint cannot be read or created, or a bad checkpoint cannot be moved aside. A bad
  // checkpoint itself is not a failure (see load_report()). `env` must outlive the checkpoint.
  // The lock file is the one file not accessed through `env` (flock needs a real descriptor; it is
  // O_CLOEXEC, so exec'd helpers do not inherit it, but a fork()ed child that does not exec shares
  // the lock until it exits).
  static Expected<std::unique_ptr<Checkpoint>> Open(Env* env, const std::filesystem::path& data_dir,
                                                    const HostRoot& host_root,
                                                    OpenOptions options = {});

  // Releases the lock (shared mode: closes the descriptor of the last file read). No write
  // happens here: call Sync() first to persist state that a failed
  // write left dirty. Must not race with other calls on this object.
  virtual ~Checkpoint() = default;
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  // Applies `mutate` to the in-memory state (under a mutex, so mutations are serialised and see
  // each other), then returns once a write that includes the mutation has completed. Concurrent
  // callers share writes: a leader writes the newest state while the others wait.
  //
  // Failure semantics: if the write carrying the mutation fails, Update returns that error (e.g.
  // ResourceExhausted for ENOSPC) to every caller whose mutation was in it. The mutation is NOT
  // rolled back (other callers' mutations share the batch); it stays in memory, the checkpoint is
  // dirty(), and the next successful write (any Update or Sync) persists it. Callers treat an
  // error as "the operation failed" and report it (kubelet retries). Because memory may then be
  // ahead of disk, never answer a request from Snapshot()/Find() alone — e.g. an idempotent
  // Prepare that finds its claim already PrepareCompleted, or an Unprepare that finds it absent —
  // without a successful Sync() (free when nothing is dirty).
  //
  // `mutate` must not call into this Checkpoint (deadlock) and should not throw; if it throws, the
  // exception propagates, and whatever it changed stays in memory as a dirty change.
  //
  // Shared mode differs: `mutate` is applied to the state freshly re-read under the flock (see
  // "Shared mode"), possibly on another thread that is inside Update() (the writer of the batch),
  // but always before this call returns; an exception it throws is rethrown here, and whatever it
  // changed is written with the batch. If the lock cannot be had within lock_timeout (the
  // FailedPrecondition above), or the file another process wrote cannot be read (the read error;
  // DataLoss or, e.g. after a downgrade, FailedPrecondition; nothing is moved aside), the
  // mutation is not applied at all. If the write fails, the batch's mutations ARE rolled back in
  // memory (another process may write before our next attempt, so they cannot be kept): memory
  // never runs ahead of disk and dirty() stays false, and the caller retries the operation.
  //
  // Durability::kVisible (exclusive mode only; shared mode is always durable): returns once a write
  // containing the mutation has replaced the file, without waiting for fsync, so it survives a
  // crash of the process but maybe not a power loss; dirty() stays true until a durable write.
  virtual Status Update(std::function<void(State&)> mutate,
                        Durability durability = Durability::kDurable) = 0;

  // Returns once everything applied in memory so far is durable, writing if needed. Returns OK at
  // once when nothing is dirty. After a failed write, Sync() tries again (it never just replays an
  // old error).
  // Shared mode: always a transaction (lock, re-read if changed, write only if dirty, i.e. to
  // record this boot's ID over another's), so OK also means the lock and the file were readable.
  virtual Status Sync() = 0;

  // A copy of the in-memory state (which may be ahead of the disk; see Update()).
  // Shared mode: the state on disk, re-read under the shared flock if it changed. If the lock
  // cannot be had within lock_timeout or the file cannot be read, the last state this object read
  // or wrote (counted in stats().stale_reads); a following Sync() then reports the error.
  virtual State Snapshot() const = 0;
  // One claim from the in-memory state, without copying the rest. Shared mode: as Snapshot().
  virtual std::optional<model::PreparedClaim> Find(std::string_view claim_uid) const = 0;
  // True when memory holds changes that are not (yet) durable. Shared mode: only a new boot ID
  // that the last file read lacks (see load_report().rebooted).
  virtual bool dirty() const = 0;
  // True when memory holds changes that are not yet in the file at all (not even without fsync).
  // Equal to dirty() in shared mode.
  virtual bool unwritten() const = 0;

  virtual const LoadReport& load_report() const = 0;
  virtual const std::string& boot_id() const = 0;
  virtual const std::filesystem::path& file_path() const = 0;
  virtual Stats stats() const = 0;

 protected:
  Checkpoint() = default;
};

// CRC-32C (Castagnoli), as used for the checksums. Exposed for tests and tools.
uint32_t Crc32c(std::string_view data);

}  // namespace accel_dra::checkpoint
