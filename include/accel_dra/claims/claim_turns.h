#pragma once
// ClaimTurns: operations on one claim run one at a time, in the order they arrived (a FIFO ticket
// per claim), and a prepare can learn whether an unprepare of its claim completed after it
// arrived (then it must not prepare the claim: the unprepare wins). Used by claims::Preparer.
//
// Promises:
//  - Turns on one claim are granted in arrival order; turns on different claims never wait for
//    each other. The claims of one Arrive() call take their places atomically, so two calls that
//    name the same claims never wait for each other in a cycle.
//  - Wait() gives up when the caller's context does (deadline, cancellation): the turn leaves the
//    line without running and later arrivals move up.
//  - A claim's line is forgotten when nobody is in it (memory stays bounded by the operations in
//    flight).

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "accel_dra/common/status.h"
#include "accel_dra/model/claim.h"

namespace accel_dra::claims {

class ClaimTurns {
 public:
  // One operation's place in its claim's line, from arrival until Leave() or destruction.
  class Turn {
   public:
    Turn(Turn&& other) noexcept;
    Turn& operator=(Turn&&) = delete;
    Turn(const Turn&) = delete;
    ~Turn() { Leave(); }

    // Waits until every operation on the claim that arrived earlier has left the line. Returns
    // the context's status (and leaves the line) when the caller gives up first.
    Status Wait(const model::CallContext& context);
    // True when an unprepare of the claim completed (MarkUnprepared) after this turn arrived.
    bool UnpreparedSinceArrival() const;
    // Records that this operation, an unprepare, completed.
    void MarkUnprepared();
    // Leaves the line (idempotent); the next operation on the claim may run.
    void Leave();

   private:
    friend class ClaimTurns;
    Turn(ClaimTurns* turns, std::string uid, uint64_t ticket)
        : turns_(turns), uid_(std::move(uid)), ticket_(ticket) {}
    ClaimTurns* turns_;
    std::string uid_;
    uint64_t ticket_;
  };

  // Places in line for each UID, in this order, taken together.
  std::vector<Turn> Arrive(const std::vector<std::string>& uids);
  Turn Arrive(const std::string& uid);
  // Claims with an operation in line (tests).
  size_t lines() const;
  // Operations in claim `uid`'s line, running or waiting.
  size_t waiting(const std::string& uid) const;

 private:
  struct Line {
    std::deque<uint64_t> tickets;  // front: the operation that runs
    uint64_t unprepared_at = 0;    // the clock when an unprepare last completed
    std::condition_variable cv;
  };
  // Takes `ticket` out of `uid`'s line; forgets the line when it is empty. Under mu_.
  void RemoveLocked(const std::string& uid, uint64_t ticket);

  mutable std::mutex mu_;
  uint64_t clock_ = 0;                 // tickets and unprepare times share it
  std::map<std::string, Line> lines_;  // node-based: a Line stays put while in use
};

}  // namespace accel_dra::claims
