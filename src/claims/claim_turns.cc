// ClaimTurns: per-claim FIFO turns (see claim_turns.h).

#include "accel_dra/claims/claim_turns.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace accel_dra::claims {

ClaimTurns::Turn::Turn(Turn&& other) noexcept
    : turns_(std::exchange(other.turns_, nullptr)),
      uid_(std::move(other.uid_)),
      ticket_(other.ticket_) {}

std::vector<ClaimTurns::Turn> ClaimTurns::Arrive(const std::vector<std::string>& uids) {
  std::vector<Turn> out;
  out.reserve(uids.size());
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& uid : uids) {
    const uint64_t ticket = ++clock_;
    lines_[uid].tickets.push_back(ticket);
    out.push_back(Turn(this, uid, ticket));
  }
  return out;
}

ClaimTurns::Turn ClaimTurns::Arrive(const std::string& uid) {
  auto turns = Arrive(std::vector<std::string>{uid});
  return std::move(turns.front());
}

size_t ClaimTurns::lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_.size();
}

size_t ClaimTurns::waiting(const std::string& uid) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = lines_.find(uid);
  return it == lines_.end() ? 0 : it->second.tickets.size();
}

void ClaimTurns::RemoveLocked(const std::string& uid, uint64_t ticket) {
  auto it = lines_.find(uid);
  if (it == lines_.end()) return;
  auto& tickets = it->second.tickets;
  tickets.erase(std::remove(tickets.begin(), tickets.end(), ticket), tickets.end());
  if (tickets.empty()) {
    lines_.erase(it);  // nobody waits on its cv
  } else {
    it->second.cv.notify_all();
  }
}

Status ClaimTurns::Turn::Wait(const model::CallContext& context) {
  if (turns_ == nullptr) return Internal("ClaimTurns: waiting on a turn that has left");
  std::unique_lock<std::mutex> lock(turns_->mu_);
  Line& line = turns_->lines_.at(uid_);
  auto mine = [&] { return line.tickets.front() == ticket_; };
  if (!context.bounded()) {
    line.cv.wait(lock, mine);
    return Status::Ok();
  }
  // The caller's deadline may follow another clock and cancellation is a poll: look every 20 ms.
  constexpr auto kPoll = std::chrono::milliseconds(20);
  while (!line.cv.wait_for(lock, kPoll, mine)) {
    lock.unlock();
    Status st = context.Check();
    lock.lock();
    if (!st.ok() && !mine()) {
      turns_->RemoveLocked(uid_, ticket_);
      turns_ = nullptr;
      return st;
    }
  }
  return Status::Ok();
}

bool ClaimTurns::Turn::UnpreparedSinceArrival() const {
  if (turns_ == nullptr) return false;
  std::lock_guard<std::mutex> lock(turns_->mu_);
  auto it = turns_->lines_.find(uid_);
  return it != turns_->lines_.end() && it->second.unprepared_at > ticket_;
}

void ClaimTurns::Turn::MarkUnprepared() {
  if (turns_ == nullptr) return;
  std::lock_guard<std::mutex> lock(turns_->mu_);
  auto it = turns_->lines_.find(uid_);
  if (it != turns_->lines_.end()) it->second.unprepared_at = ++turns_->clock_;
}

void ClaimTurns::Turn::Leave() {
  if (turns_ == nullptr) return;
  std::lock_guard<std::mutex> lock(turns_->mu_);
  turns_->RemoveLocked(uid_, ticket_);
  turns_ = nullptr;
}

}  // namespace accel_dra::claims
