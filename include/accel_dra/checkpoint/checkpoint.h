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
//    concurrent callers share one write). See Update() for what an error means.
//  - A missing file is an empty state. A file that cannot be used (not JSON, checksum mismatch,
//    missing fields, truncated, or a format version newer than this build reads) is moved aside to
//    checkpoint.json.corrupt-<unix seconds> and Open() succeeds with an empty state and a loud
//    warning in load_report(): the plugin must not crash-loop on a bad checkpoint. A file that
//    cannot be read at all (EACCES, EIO) is an Open() error; nothing is moved.
//  - Exactly one process owns the checkpoint: Open() holds an exclusive flock on
//    <data dir>/checkpoint.lock (holding our pid for diagnostics) until destruction.
//  - A checkpoint written under a different boot ID (/proc/sys/kernel/random/boot_id) is loaded
//    (kubelet still considers the claims prepared after a node reboot) but load_report().rebooted
//    is set: device state that does not survive a reboot (time-slice settings, partitions) must be
//    re-created from the claims; then call Sync() to record the new boot ID.
//  - Every method is safe to call from many threads at once.
//
// Format history (loaders are kept for every version; tests/fixtures/checkpoint holds a file of
// each, which must load forever):
//   1 (accel-dra 0.1.0): the format described by EncodeFormat1 in src/checkpoint/checkpoint.cc.

#include <chrono>
#include <condition_variable>
#include <cstdint>
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
};

struct OpenOptions {
  // How long Open() waits for another process to release the lock (polling every 100 ms).
  std::chrono::milliseconds lock_timeout{10000};
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

  // Releases the lock. No write happens here: call Sync() first to persist state that a failed
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
  Status Update(std::function<void(State&)> mutate);

  // Returns once everything applied in memory so far is durable, writing if needed. Returns OK at
  // once when nothing is dirty. After a failed write, Sync() tries again (it never just replays an
  // old error).
  Status Sync();

  // A copy of the in-memory state (which may be ahead of the disk; see Update()).
  State Snapshot() const;
  // One claim from the in-memory state, without copying the rest.
  std::optional<PreparedClaim> Find(std::string_view claim_uid) const;
  // True when memory holds changes that are not (yet) durable.
  bool dirty() const;

  const LoadReport& load_report() const { return report_; }
  const std::string& boot_id() const { return boot_id_; }
  const std::filesystem::path& file_path() const { return file_; }
  Stats stats() const;

 private:
  Checkpoint(Env* env, std::filesystem::path dir, int lock_fd, std::string boot_id,
             std::string writer_version);
  // Waits until sequence `seq` is durable, leading a write when none is in flight. A failed
  // write is reported only if it started after `attempts_seen` (so it included `seq`).
  Status WaitDurableLocked(std::unique_lock<std::mutex>& lock, uint64_t seq,
                           uint64_t attempts_seen);
  void WriteLocked(std::unique_lock<std::mutex>& lock);

  Env* const env_;
  const std::filesystem::path dir_;
  const std::filesystem::path file_;
  const int lock_fd_;
  const std::string boot_id_;
  const std::string writer_version_;
  LoadReport report_;

  mutable std::mutex mu_;
  std::condition_variable durable_cv_;
  State state_;
  uint64_t applied_seq_ = 0;     // mutations applied in memory
  uint64_t durable_seq_ = 0;     // mutations up to here are on disk
  bool writing_ = false;         // a leader is writing (outside the mutex)
  uint64_t attempts_ = 0;        // write attempts started
  uint64_t failed_attempt_ = 0;  // id of the last failed attempt (0 = none)
  uint64_t failed_upto_ = 0;     // the last failed attempt carried mutations up to here
  Status failed_status_;
  Stats stats_;
};

// CRC-32C (Castagnoli), as used for the format-1 checksum. Exposed for tests and tools.
uint32_t Crc32c(std::string_view data);

}  // namespace accel_dra::checkpoint
