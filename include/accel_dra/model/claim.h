#pragma once
// The version-free core that the kubelet-facing gRPC layer calls.
//
// The DRA wire API exists in two versions (v1, v1beta1) that differ only in translation; both
// adapters turn a kubelet request into ClaimRefs, call ClaimPreparer and translate the answer back.
// Nothing in this header depends on gRPC or protobuf.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "accel_dra/common/status.h"
#include "accel_dra/model/prepared_claim.h"

namespace accel_dra::model {

// Identifies one ResourceClaim as kubelet names it: namespace, name and UID. The plugin has to
// fetch the claim itself (and must check that the UID still matches).
struct ClaimRef {
  std::string ns;
  std::string name;
  std::string uid;

  friend bool operator==(const ClaimRef&, const ClaimRef&) = default;
};

// Outcome of preparing one claim. A non-empty `error` means the claim failed (devices ignored);
// the message is shown to the user in a pod event, so it should say what to do. The devices are
// the claim's records (model/prepared_claim.h); the adapters send only their wire fields.
struct PrepareResult {
  std::vector<PreparedDevice> devices;
  std::string error;

  bool ok() const { return error.empty(); }
  friend bool operator==(const PrepareResult&, const PrepareResult&) = default;
};

// What the caller of one call allows it: a deadline and a way to learn that it gave up (kubelet's
// gRPC deadline and cancellation; the gRPC layer builds one from its ServerContext, so nothing
// here depends on gRPC). Copyable; Check() may be called from any thread while the call runs.
class CallContext {
 public:
  using Clock = std::chrono::steady_clock;

  // No deadline, never cancelled.
  CallContext() = default;
  // `cancelled` (may be empty) says whether the caller cancelled the call; `now` (empty: the
  // steady clock) is the clock the deadline is compared with (a test seam).
  CallContext(std::optional<Clock::time_point> deadline, std::function<bool()> cancelled,
              std::function<Clock::time_point()> now = {});

  // OK while the caller still waits for the answer; DeadlineExceeded once the deadline has
  // passed; Cancelled once the caller cancelled. The message says which and when.
  Status Check() const;
  // Whether Check() can ever fail (a deadline or a cancellation to watch).
  bool bounded() const { return deadline_.has_value() || static_cast<bool>(cancelled_); }
  std::optional<Clock::time_point> deadline() const { return deadline_; }

 private:
  std::optional<Clock::time_point> deadline_;
  std::function<bool()> cancelled_;
  std::function<Clock::time_point()> now_;
};

// What the gRPC layer needs from the core. Implementations must be thread-safe: kubelet (and the
// liveness probe) call concurrently, and the gRPC layer does not serialize calls.
class ClaimPreparer {
 public:
  virtual ~ClaimPreparer() = default;

  // Prepares every claim (idempotently). Returns one entry per input claim, keyed by claim UID.
  // Never throws. Missing entries are reported to kubelet as per-claim errors by the caller.
  // `context` is the caller's deadline and cancellation: a claim whose caller has given up is
  // not prepared (a per-claim error, DeadlineExceeded or Cancelled, and no side effect left).
  virtual std::map<std::string, PrepareResult> Prepare(const std::vector<ClaimRef>& claims,
                                                       const CallContext& context) = 0;
  // The same without a deadline.
  std::map<std::string, PrepareResult> Prepare(const std::vector<ClaimRef>& claims) {
    return Prepare(claims, CallContext());
  }

  // Unprepares every claim (idempotently; an unknown claim is a success). Returns one entry per
  // input claim keyed by claim UID: empty string = success, otherwise the error. Never throws.
  virtual std::map<std::string, std::string> Unprepare(const std::vector<ClaimRef>& claims) = 0;
};

}  // namespace accel_dra::model
