#pragma once
// The plugin's durable record of the ResourceClaims it has prepared on this node, so that a restart
// (or a crash at any instant) recovers exactly what was prepared.
//
// Promises:
//  - One file, <data dir>/checkpoint.json, replaced only through Env::WriteFileAtomic (mode 0600):
//    after a crash it holds either the state before or the state after a write, never a mix.
//  - Format 1 on disk: {"version": 1, "checksum": "<crc32c, 8 lowercase hex digits>", "data":
//  {...}}.
//    The checksum covers the canonical serialisation of the "data" value as parsed (compact
//    nlohmann::json dump, keys sorted), so whitespace and escaping in the file do not matter and
//    unknown fields inside "data" are covered too (and tolerated on load, but not preserved).
//  - Update() returns only after a write that contains its mutation is durable (group commit:
//    concurrent callers in one process share one write). See Update() for what an error means.
//  - A missing file is an empty state. A file that cannot be used (not JSON, checksum mismatch,
//    missing fields, truncated, or a format version newer than this build reads) is moved aside to
//    checkpoint.json.corrupt-<unix seconds> and Open() succeeds with an empty state and a loud
//    warning in load_report(): the plugin must not crash-loop on a bad checkpoint. A file that
//    cannot be read at all (EACCES, EIO) is an Open() error; nothing is moved.
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
//    while a write is in flight) wait for each other, each up to lock_timeout.
//  - An exclusive-mode process and shared-mode processes exclude each other: an exclusive Open()
//    waits (up to its lock_timeout) only for the shared users' operation in progress, then owns
//    the checkpoint; until it closes, shared Open(), Update() and Sync() fail after their
//    lock_timeout with the FailedPrecondition "another accel-dra plugin process ... holds ..."
//    (and Snapshot()/Find() serve the last state read; see there). A shared Open() likewise fails
//    while an exclusive owner lives. The checkpoint stays consistent either way.
//
// Format history (loaders are kept for every version; tests/fixtures/checkpoint holds a file of
// each, which must load forever):
//   1 (accel-dra 0.1.0): the format described by EncodeFormat1 in src/checkpoint/checkpoint.cc.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/common/env.h"
#include "accel_dra/common/status.h"

namespace accel_dra::checkpoint {

using Json = nlohmann::json;
using TimePoint = std::chrono::system_clock::time_point;

inline constexpr int kCurrentFormatVersion = 1;
inline constexpr std::string_view kCheckpointFileName = "checkpoint.json";
inline constexpr std::string_view kLockFileName = "checkpoint.lock";

enum class ClaimState {
  kPrepareStarted,    // prepare began; side effects may be partial and must be rolled back/redone
  kPrepareCompleted,  // prepare finished; `devices` is what kubelet was (or will be) told
};
// "PrepareStarted" / "PrepareCompleted" (the on-disk spelling).
std::string_view ClaimStateName(ClaimState state);

// One device prepared for a claim.
struct PreparedDevice {
  // Top-level request names this device serves (empty = all requests).
  std::vector<std::string> request_names;
  std::string pool;
  std::string device;
  // Fully qualified CDI device IDs ("vendor/class=name").
  std::vector<std::string> cdi_device_ids;
  // Share of a multi-allocatable device (consumable capacity), when the allocation names one.
  std::optional<std::string> share_id;
  // The sharing settings the driver applied (free-form; an object by convention, {} when none).
  // Needed to undo or re-apply them (e.g. after a reboot) without the ResourceClaim.
  Json config = Json::object();

  friend bool operator==(const PreparedDevice&, const PreparedDevice&) = default;
};

// One claim this plugin prepared (or began to prepare) on this node.
struct PreparedClaim {
  std::string ns;  // namespace and name let a garbage collector look the claim up later
  std::string name;
  ClaimState state = ClaimState::kPrepareStarted;
  std::vector<PreparedDevice> devices;
  // File name (not path) of the claim's CDI spec in the CDI root; empty when none was written.
  std::string cdi_spec_file;
  // Stored with millisecond precision (RFC 3339, UTC).
  TimePoint prepare_started_at{};
  std::optional<TimePoint> prepare_completed_at;

  friend bool operator==(const PreparedClaim&, const PreparedClaim&) = default;
};

// The checkpointed state: prepared claims by claim UID.
struct State {
  std::map<std::string, PreparedClaim, std::less<>> claims;

  friend bool operator==(const State&, const State&) = default;
};

// How Open() found the file on disk.
struct LoadReport {
  // Set when the file was unusable and moved aside (DataLoss for corruption, FailedPrecondition
  // for a newer format). The message names the file and where it went. Log it loudly (and raise
  // an Event); the plugin continues with an empty state.
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
  ~Checkpoint();
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
  Status Update(std::function<void(State&)> mutate, Durability durability = Durability::kDurable);

  // Returns once everything applied in memory so far is durable, writing if needed. Returns OK at
  // once when nothing is dirty. After a failed write, Sync() tries again (it never just replays an
  // old error).
  // Shared mode: always a transaction (lock, re-read if changed, write only if dirty, i.e. to
  // record this boot's ID over another's), so OK also means the lock and the file were readable.
  Status Sync();

  // A copy of the in-memory state (which may be ahead of the disk; see Update()).
  // Shared mode: the state on disk, re-read under the shared flock if it changed. If the lock
  // cannot be had within lock_timeout or the file cannot be read, the last state this object read
  // or wrote (counted in stats().stale_reads); a following Sync() then reports the error.
  State Snapshot() const;
  // One claim from the in-memory state, without copying the rest. Shared mode: as Snapshot().
  std::optional<PreparedClaim> Find(std::string_view claim_uid) const;
  // True when memory holds changes that are not (yet) durable. Shared mode: only a new boot ID
  // that the last file read lacks (see load_report().rebooted).
  bool dirty() const;
  // True when memory holds changes that are not yet in the file at all (not even without fsync).
  // Equal to dirty() in shared mode.
  bool unwritten() const;

  const LoadReport& load_report() const { return report_; }
  const std::string& boot_id() const { return boot_id_; }
  const std::filesystem::path& file_path() const { return file_; }
  Stats stats() const;

 private:
  // Identity of the checkpoint file as this object last read or wrote it (shared mode).
  struct FileStamp {
    bool exists = false;
    uint64_t dev = 0;
    uint64_t ino = 0;
    int64_t size = 0;
    int64_t mtime_sec = 0;
    int64_t mtime_nsec = 0;
    friend bool operator==(const FileStamp&, const FileStamp&) = default;
  };
  // An Update() (mutate set) or Sync() (mutate null) waiting for the writer of its batch.
  struct PendingOp {
    std::function<void(State&)>* mutate = nullptr;
    bool done = false;
    Status status;
    std::exception_ptr error;
  };

  Checkpoint(Env* env, std::filesystem::path dir, int lock_fd, std::string boot_id,
             std::string writer_version, const OpenOptions& options);
  // Shared mode.
  Status EnqueueShared(std::function<void(State&)>* mutate);
  void LeadSharedLocked(std::unique_lock<std::mutex>& lock);
  // Re-reads the file if it differs from stamp_ (needs the flock and mu_).
  Status RefreshLocked() const;
  // Records the file now on disk as the one last read or written (needs the flock and mu_).
  Status RememberFileLocked() const;
  void ForgetFileLocked() const;
  // Runs `read` under mu_ after taking the shared flock and re-reading the file if it changed
  // (or, when either fails, on the last state read).
  void ReadShared(const std::function<void()>& read) const;
  // Takes the flock (LOCK_SH or LOCK_EX) on a fresh descriptor of the lock file; -1 and `*st` set
  // on failure.
  int LockFile(int how, Status* st) const;
  // Waits until sequence `seq` is durable, leading a write when none is in flight. A failed
  // write is reported only if it started after `attempts_seen` (so it included `seq`).
  Status WaitDurableLocked(std::unique_lock<std::mutex>& lock, uint64_t seq, Durability durability,
                           uint64_t attempts_seen);
  void WriteLocked(std::unique_lock<std::mutex>& lock, Durability durability);

  Env* const env_;
  const std::filesystem::path dir_;
  const std::filesystem::path file_;
  const std::filesystem::path lock_path_;
  const int lock_fd_;  // exclusive mode; -1 in shared mode
  const std::string boot_id_;
  const std::string writer_version_;
  const bool shared_;
  const std::chrono::milliseconds lock_timeout_;
  LoadReport report_;

  // Shared mode: held by whoever of this process holds the flock (the writer of a batch or a
  // reader), so that threads wait here instead of polling flock. Readers take it exclusively too:
  // they hold it for microseconds, and a reader-preferring lock could starve the writer.
  // A timed lock built from a mutex and a condition variable: GCC 12's ThreadSanitizer does not
  // intercept pthread_mutex_clocklock, which std::timed_mutex::try_lock_for uses, and then
  // reports every unlock as "unlock of an unlocked mutex".
  class TimedGate {
   public:
    void lock() {
      std::unique_lock l(m_);
      cv_.wait(l, [this] { return !held_; });
      held_ = true;
    }
    bool try_lock() {
      std::lock_guard l(m_);
      if (held_) return false;
      held_ = true;
      return true;
    }
    template <class Rep, class Period>
    bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
      std::unique_lock l(m_);
      if (!cv_.wait_for(l, timeout, [this] { return !held_; })) return false;
      held_ = true;
      return true;
    }
    void unlock() {
      {
        std::lock_guard l(m_);
        held_ = false;
      }
      cv_.notify_one();
    }

   private:
    std::mutex m_;
    std::condition_variable cv_;
    bool held_ = false;
  };
  mutable TimedGate txn_mu_;
  mutable std::mutex mu_;
  std::condition_variable durable_cv_;
  // Mutable: in shared mode, const readers re-read the file into it.
  mutable State state_;
  mutable FileStamp stamp_;           // shared mode: the file last read or written
  mutable bool stamp_valid_ = false;  // false = re-read at the next operation
  mutable int stamp_fd_ = -1;         // keeps that file's inode from being reused
  mutable std::string disk_boot_id_;  // shared mode: boot ID in that file ("" when none)
  std::vector<PendingOp*> pending_;   // shared mode: queued for the next writer
  uint64_t applied_seq_ = 0;          // mutations applied in memory
  uint64_t durable_seq_ = 0;          // mutations up to here are on disk
  uint64_t visible_seq_ = 0;          // mutations up to here are in the file (maybe not fsynced)
  bool writing_ = false;              // a leader is writing (outside the mutex)
  uint64_t attempts_ = 0;             // write attempts started
  uint64_t failed_attempt_ = 0;       // id of the last failed attempt (0 = none)
  uint64_t failed_upto_ = 0;          // the last failed attempt carried mutations up to here
  Status failed_status_;
  mutable Stats stats_;
};

// CRC-32C (Castagnoli), as used for the format-1 checksum. Exposed for tests and tools.
uint32_t Crc32c(std::string_view data);

}  // namespace accel_dra::checkpoint
