#pragma once
// Internal: the shared mode (see "Shared mode" in include/accel_dra/checkpoint/checkpoint.h).
// The file is the truth: every operation is a transaction under the flock of the lock file that
// first re-reads the file if another process (or another Checkpoint object) replaced it.
// Update()s that queue while a transaction is in flight are applied, in arrival order, by the
// next leader after its re-read, and share one write.

#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <vector>

#include "checkpoint_base.h"

namespace accel_dra::checkpoint {

class SharedCheckpoint final : public CheckpointBase {
 public:
  // `state` is what Open() loaded while it holds the flock, `disk_boot_id` the boot ID in that
  // file ("" when none). Call Start() before Open() releases the flock.
  SharedCheckpoint(Setup setup, State state, std::string disk_boot_id);
  ~SharedCheckpoint() override;
  // Records the file now on disk as the one last read (needs the flock).
  Status Start();

  Status Update(std::function<void(State&)> mutate, Durability durability) override;
  Status Sync() override;
  State Snapshot() const override;
  std::optional<model::PreparedClaim> Find(std::string_view claim_uid) const override;
  bool dirty() const override;
  bool unwritten() const override;
  Stats stats() const override;

 private:
  // Identity of the checkpoint file as this object last read or wrote it.
  struct FileStamp {
    bool exists = false;
    uint64_t dev = 0;
    uint64_t ino = 0;
    int64_t size = 0;
    int64_t mtime_sec = 0;
    int64_t mtime_nsec = 0;
    friend bool operator==(const FileStamp&, const FileStamp&) = default;
  };
  static FileStamp StampOf(const struct stat& st);
  // An Update() (mutate set) or Sync() (mutate null) waiting for the leader of its batch.
  struct PendingOp {
    std::function<void(State&)>* mutate = nullptr;
    bool done = false;
    Status status;
    std::exception_ptr error;
  };
  // Held by whoever of this process holds the flock (the leader of a batch or a reader), so that
  // threads wait here instead of polling flock. Readers take it exclusively too: they hold it for
  // microseconds, and a reader-preferring lock could starve the writer. A timed lock built from a
  // mutex and a condition variable: GCC 12's ThreadSanitizer does not intercept
  // pthread_mutex_clocklock, which std::timed_mutex::try_lock_for uses, and then reports every
  // unlock as "unlock of an unlocked mutex".
  class TimedGate {
   public:
    void lock();
    bool try_lock();
    bool try_lock_for(std::chrono::milliseconds timeout);
    void unlock();

   private:
    std::mutex m_;
    std::condition_variable cv_;
    bool held_ = false;
  };

  Status Enqueue(std::function<void(State&)>* mutate);
  // Leads one transaction for the queued batch: lock, re-read, apply, write, unlock.
  void LeadLocked(std::unique_lock<std::mutex>& lock);
  // Applies the batch's mutations to state_ and writes it if anything changed (needs the flock).
  Status ApplyAndWriteLocked(std::unique_lock<std::mutex>& lock,
                             const std::vector<PendingOp*>& batch);
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
  // Boot ID on disk is another boot's: Sync() must write.
  bool BootIdStaleLocked() const { return !disk_boot_id_.empty() && disk_boot_id_ != boot_id_; }

  mutable TimedGate txn_mu_;
  mutable std::mutex mu_;
  std::condition_variable done_cv_;
  // Mutable: const readers re-read the file into it.
  mutable State state_;
  mutable FileStamp stamp_;           // the file last read or written
  mutable bool stamp_valid_ = false;  // false = re-read at the next operation
  mutable int stamp_fd_ = -1;         // keeps that file's inode from being reused
  mutable std::string disk_boot_id_;  // boot ID in that file ("" when none)
  std::vector<PendingOp*> pending_;   // queued for the next leader
  bool leading_ = false;              // a leader runs a transaction (outside mu_)
  mutable Stats stats_;
};

}  // namespace accel_dra::checkpoint
