#pragma once
// Internal: the exclusive mode. This process owns the checkpoint (it holds the exclusive flock
// from Open() until destruction), so memory is the truth and the file only follows it: Update()
// mutates memory and waits for a write that carries the mutation, and concurrent Update()s share
// writes (group commit: while one caller writes the newest state, the others queue for the next
// write, which carries all of them).

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "checkpoint_base.h"

namespace accel_dra::checkpoint {

class ExclusiveCheckpoint final : public CheckpointBase {
 public:
  // Takes over `lock_fd` (the exclusive flock) and the state Open() loaded.
  ExclusiveCheckpoint(Setup setup, int lock_fd, State state);
  ~ExclusiveCheckpoint() override;

  Status Update(std::function<void(State&)> mutate, Durability durability) override;
  Status Sync() override;
  State Snapshot() const override;
  std::optional<model::PreparedClaim> Find(std::string_view claim_uid) const override;
  bool dirty() const override;
  bool unwritten() const override;
  Stats stats() const override;

 private:
  // Waits until sequence `seq` is durable (or visible, with kVisible), leading a write when none
  // is in flight. A failed write is reported only if it started after `attempts_seen` (so it
  // included `seq`).
  Status WaitDurableLocked(std::unique_lock<std::mutex>& lock, uint64_t seq, Durability durability,
                           uint64_t attempts_seen);
  // One write of the newest state; mu_ is released while encoding and writing.
  void WriteLocked(std::unique_lock<std::mutex>& lock, Durability durability);

  const int lock_fd_;
  mutable std::mutex mu_;
  std::condition_variable durable_cv_;
  State state_;
  uint64_t applied_seq_ = 0;     // mutations applied in memory
  uint64_t durable_seq_ = 0;     // mutations up to here are on disk
  uint64_t visible_seq_ = 0;     // mutations up to here are in the file (maybe not fsynced)
  bool writing_ = false;         // a leader is writing (outside the mutex)
  uint64_t attempts_ = 0;        // write attempts started
  uint64_t failed_attempt_ = 0;  // id of the last failed attempt (0 = none)
  uint64_t failed_upto_ = 0;     // the last failed attempt carried mutations up to here
  Status failed_status_;
  Stats stats_;
};

}  // namespace accel_dra::checkpoint
