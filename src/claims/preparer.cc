// Preparer: the fan-out of kubelet's calls over claims, per-claim serialisation, unprepare and
// stale-claim clean-up. Prepare is in prepare.cc, Recover() in recovery.cc, time slices in
// time_slice.cc, CDI specs from records in claim_spec.cc.

#include "accel_dra/claims/preparer.h"

#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <system_error>
#include <utility>

#include "accel_dra/common/fault.h"
#include "accel_dra/common/json_path.h"
#include "accel_dra/common/log.h"
#include "accel_dra/common/metrics.h"
#include "preparer_internal.h"

namespace accel_dra::claims {

std::string ClaimName(const model::ClaimRef& c) { return c.ns + "/" + c.name; }

std::string ClaimLog(const std::string& ns, const std::string& name, const std::string& uid) {
  return "ResourceClaim " + ns + "/" + name + " (uid " + uid + ")";
}
std::string ClaimLog(const model::ClaimRef& c) { return ClaimLog(c.ns, c.name, c.uid); }

std::string ClaimUid(const Json& claim) {
  const Json* v = JsonAt(claim, {"metadata", "uid"});
  return v != nullptr && v->is_string() ? v->get<std::string>() : "";
}

std::string BaseRequestName(const std::string& request) {
  auto slash = request.find('/');
  return slash == std::string::npos ? request : request.substr(0, slash);
}

Preparer::Preparer(PreparerOptions options, ClaimGetter get_claim, InventorySource inventory,
                   checkpoint::Checkpoint* checkpoint, cdi::CdiWriter* cdi)
    : options_(std::move(options)),
      get_claim_(std::move(get_claim)),
      inventory_(std::move(inventory)),
      checkpoint_(checkpoint),
      cdi_(cdi) {}

std::mutex& Preparer::ClaimMutex(const std::string& uid) {
  return claim_mutexes_[std::hash<std::string>{}(uid) % kStripes];
}

std::map<std::string, model::PrepareResult> Preparer::Prepare(
    const std::vector<model::ClaimRef>& claims) {
  std::map<std::string, model::PrepareResult> out;
  if (claims.size() == 1) {
    out[claims[0].uid] = PrepareOne(claims[0]);
    return out;
  }
  std::vector<std::future<model::PrepareResult>> futures;
  futures.reserve(claims.size());
  for (const auto& c : claims) {
    try {
      futures.push_back(std::async(std::launch::async, [this, c] { return PrepareOne(c); }));
    } catch (const std::system_error&) {
      // No thread available: prepare this claim here (PrepareOne itself never throws).
      std::promise<model::PrepareResult> p;
      p.set_value(PrepareOne(c));
      futures.push_back(p.get_future());
    }
  }
  for (size_t i = 0; i < claims.size(); ++i) out[claims[i].uid] = futures[i].get();
  return out;
}

std::map<std::string, std::string> Preparer::Unprepare(const std::vector<model::ClaimRef>& claims) {
  std::map<std::string, std::string> out;
  for (const auto& c : claims) out[c.uid] = UnprepareOne(c);
  return out;
}

model::PrepareResult Preparer::PrepareOne(const model::ClaimRef& claim) {
  auto t0 = std::chrono::steady_clock::now();
  model::PrepareResult r;
  Expected<std::vector<model::PreparedDevice>> devices = Status();
  std::string reason;
  {
    std::lock_guard<std::mutex> lock(ClaimMutex(claim.uid));
    try {
      devices = PrepareLocked(claim, reason);
    } catch (const std::exception& e) {
      // A safety net: nothing below is expected to throw, and Prepare must never throw.
      reason = "internal";
      devices = Internal("ResourceClaim " + ClaimName(claim) +
                         ": unexpected error while preparing: " + e.what());
    }
  }
  const double seconds = SecondsSince(t0);
  if (devices.ok()) {
    r.devices = std::move(devices).value();
    LOG_V(1, "prepared {}: {} devices in {} us", ClaimLog(claim), r.devices.size(),
          static_cast<int64_t>(seconds * 1e6));
    reason.clear();
  } else {
    r.error = devices.status().message();
    spdlog::warn("prepare of {} failed: {}", ClaimLog(claim), r.error);
  }
  Metrics().ClaimOperationDone(ClaimOperation::kPrepare, reason, seconds);
  return r;
}

std::string Preparer::UnprepareOne(const model::ClaimRef& claim) {
  auto t0 = std::chrono::steady_clock::now();
  Status st;
  {
    std::lock_guard<std::mutex> lock(ClaimMutex(claim.uid));
    st = UnprepareLocked(claim.uid);
  }
  if (!st.ok()) {
    st = st.WithContext("ResourceClaim " + ClaimName(claim));
    spdlog::warn("unprepare of {} failed: {}", ClaimLog(claim), st.message());
    Metrics().ClaimOperationDone(ClaimOperation::kUnprepare, "unprepare_failed", SecondsSince(t0));
    return st.message();
  }
  LOG_V(1, "unprepared {}", ClaimLog(claim));
  Metrics().ClaimOperationDone(ClaimOperation::kUnprepare, "", SecondsSince(t0));
  return "";
}

Status Preparer::UnprepareLocked(const std::string& uid, bool strict) {
  auto entry = checkpoint_->Find(uid);
  if (!entry) {
    // Never prepared here (kubelet may ask): success, once memory and disk agree.
    return checkpoint_->Sync().WithContext("checkpoint");
  }
  RETURN_IF_ERROR(cdi_->RemoveClaimSpec(uid).WithContext("removing the CDI spec"));
  CrashPoint("unprepare-after-cdi-remove");
  if (Status st = ResetTimeSlices(uid, entry->devices, ClaimLog(entry->ns, entry->name, uid));
      !st.ok()) {
    if (strict) return st;
    spdlog::error("ResourceClaim {}/{} (uid {}): {}; the claim is removed anyway", entry->ns,
                  entry->name, uid, st.message());
  }
  return checkpoint_->Update([&](checkpoint::State& s) { s.claims.erase(uid); })
      .WithContext("removing the claim from the checkpoint");
}

int Preparer::CleanupStale() {
  int cleaned = 0;
  for (const auto& [uid, claim] : checkpoint_->Snapshot().claims) {
    auto obj = get_claim_(claim.ns, claim.name);
    bool gone = false;
    if (!obj.ok()) {
      gone = obj.status().code() == Code::kNotFound;  // other errors: try again next time
    } else {
      std::string now = ClaimUid(*obj);
      gone = !now.empty() && now != uid;  // an answer without a UID proves nothing
    }
    if (!gone) continue;
    std::lock_guard<std::mutex> lock(ClaimMutex(uid));
    Status st = UnprepareLocked(uid);
    if (st.ok()) {
      spdlog::info("cleaned up ResourceClaim {}/{} (uid {}): it no longer exists", claim.ns,
                   claim.name, uid);
      cleaned++;
    } else {
      spdlog::warn("cleaning up ResourceClaim {}/{} (uid {}): {}", claim.ns, claim.name, uid,
                   st.message());
    }
  }
  return cleaned;
}

}  // namespace accel_dra::claims
