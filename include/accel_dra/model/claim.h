#pragma once
// The version-free core that the kubelet-facing gRPC layer calls.
//
// The DRA wire API exists in two versions (v1, v1beta1) that differ only in translation; both
// adapters turn a kubelet request into ClaimRefs, call ClaimPreparer and translate the answer back.
// Nothing in this header depends on gRPC or protobuf.

#include <map>
#include <string>
#include <vector>

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

// What the gRPC layer needs from the core. Implementations must be thread-safe: kubelet (and the
// liveness probe) call concurrently, and the gRPC layer does not serialize calls.
class ClaimPreparer {
 public:
  virtual ~ClaimPreparer() = default;

  // Prepares every claim (idempotently). Returns one entry per input claim, keyed by claim UID.
  // Never throws. Missing entries are reported to kubelet as per-claim errors by the caller.
  virtual std::map<std::string, PrepareResult> Prepare(const std::vector<ClaimRef>& claims) = 0;

  // Unprepares every claim (idempotently; an unknown claim is a success). Returns one entry per
  // input claim keyed by claim UID: empty string = success, otherwise the error. Never throws.
  virtual std::map<std::string, std::string> Unprepare(const std::vector<ClaimRef>& claims) = 0;
};

}  // namespace accel_dra::model
