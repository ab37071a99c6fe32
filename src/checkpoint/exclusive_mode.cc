#include "exclusive_mode.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

namespace accel_dra::checkpoint {

ExclusiveCheckpoint::ExclusiveCheckpoint(Setup setup, int lock_fd, State state)
    : CheckpointBase(std::move(setup)), lock_fd_(lock_fd), state_(std::move(state)) {
  // After a reboot the new boot ID is a change the disk lacks; Sync() (or any Update) records it.
  if (report_.rebooted) applied_seq_ = 1;
}

ExclusiveCheckpoint::~ExclusiveCheckpoint() {
  // Closing the descriptor releases the flock (unless a fork()ed child still shares it).
  ::close(lock_fd_);
}

Status ExclusiveCheckpoint::Update(std::function<void(State&)> mutate, Durability durability) {
  std::unique_lock lock(mu_);
  ++stats_.updates;
  const uint64_t attempts_seen = attempts_;
  try {
    mutate(state_);
  } catch (...) {
    ++applied_seq_;  // whatever it changed is now a dirty change
    throw;
  }
  const uint64_t seq = ++applied_seq_;
  return WaitDurableLocked(lock, seq, durability, attempts_seen);
}

Status ExclusiveCheckpoint::Sync() {
  std::unique_lock lock(mu_);
  if (durable_seq_ >= applied_seq_) return Status::Ok();
  return WaitDurableLocked(lock, applied_seq_, Durability::kDurable, attempts_);
}

Status ExclusiveCheckpoint::WaitDurableLocked(std::unique_lock<std::mutex>& lock, uint64_t seq,
                                              Durability durability, uint64_t attempts_seen) {
  const bool visible_enough = durability == Durability::kVisible;
  for (;;) {
    if (durable_seq_ >= seq || (visible_enough && visible_seq_ >= seq)) return Status::Ok();
    // The last failed attempt started after we looked, so it carried `seq` (a later successful
    // write would have made it durable, checked above).
    if (failed_attempt_ > attempts_seen && failed_upto_ >= seq) return failed_status_;
    if (!writing_) {
      WriteLocked(lock, durability);  // become the leader; loops back to pick up the outcome
      continue;
    }
    durable_cv_.wait(lock);
  }
}

void ExclusiveCheckpoint::WriteLocked(std::unique_lock<std::mutex>& lock, Durability durability) {
  writing_ = true;
  const uint64_t attempt = ++attempts_;
  const uint64_t upto = applied_seq_;
  ++stats_.writes;
  format::Contents contents = ContentsOf(state_);
  lock.unlock();  // followers may mutate (and queue for the next write) while we encode+write
  auto bytes = format::Encode(contents);
  Status st = bytes.ok() ? WriteFile(*bytes, durability) : bytes.status();
  lock.lock();
  writing_ = false;
  if (st.ok()) {
    visible_seq_ = std::max(visible_seq_, upto);
    if (durability == Durability::kDurable) durable_seq_ = std::max(durable_seq_, upto);
  } else {
    ++stats_.failed_writes;
    failed_attempt_ = attempt;
    failed_upto_ = upto;
    failed_status_ = st;
  }
  durable_cv_.notify_all();
}

State ExclusiveCheckpoint::Snapshot() const {
  std::lock_guard lock(mu_);
  return state_;
}

std::optional<model::PreparedClaim> ExclusiveCheckpoint::Find(std::string_view claim_uid) const {
  std::lock_guard lock(mu_);
  auto it = state_.claims.find(claim_uid);
  if (it == state_.claims.end()) return std::nullopt;
  return it->second;
}

bool ExclusiveCheckpoint::dirty() const {
  std::lock_guard lock(mu_);
  return durable_seq_ < applied_seq_;
}

bool ExclusiveCheckpoint::unwritten() const {
  std::lock_guard lock(mu_);
  return std::max(visible_seq_, durable_seq_) < applied_seq_;
}

Stats ExclusiveCheckpoint::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace accel_dra::checkpoint
