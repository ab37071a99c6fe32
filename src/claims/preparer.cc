// Preparer: the fan-out of kubelet's calls over claims, per-claim turns (arrival order, the
// caller's deadline, a later unprepare wins), unprepare and stale-claim clean-up. Prepare is in
// prepare.cc, Recover() in recovery.cc, time slices in time_slice.cc, CDI specs from records in
// claim_spec.cc.

#include "accel_dra/claims/preparer.h"

#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <set>
#include <system_error>
#include <thread>
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
      cdi_(cdi) {
  if (!options_.device_metadata_dir.empty()) {
    metadata_.emplace(cdi_->env(), options_.device_metadata_dir,
                      options_.device_metadata_cdi_root.empty()
                          ? cdi_->root()
                          : std::filesystem::path(options_.device_metadata_cdi_root),
                      options_.driver_name);
  }
}

std::mutex& Preparer::ClaimMutex(const std::string& uid) {
  return claim_mutexes_[std::hash<std::string>{}(uid) % kStripes];
}

std::map<std::string, model::PrepareResult> Preparer::Prepare(
    const std::vector<model::ClaimRef>& claims, const model::CallContext& context) {
  std::map<std::string, model::PrepareResult> out;
  std::vector<std::string> uids;
  for (const auto& c : claims) uids.push_back(c.uid);
  // Every claim of the call takes its place in line now, before any of them waits.
  std::vector<ClaimTurns::Turn> turns = turns_.Arrive(uids);
  if (claims.size() == 1) {
    out[claims[0].uid] = PrepareOne(claims[0], turns[0], context);
    return out;
  }
  std::vector<std::future<model::PrepareResult>> futures;
  futures.reserve(claims.size());
  for (size_t i = 0; i < claims.size(); ++i) {
    const model::ClaimRef& c = claims[i];
    ClaimTurns::Turn* turn = &turns[i];  // `turns` outlives the futures
    try {
      futures.push_back(std::async(std::launch::async, [this, &c, turn, &context] {
        return PrepareOne(c, *turn, context);
      }));
    } catch (const std::system_error&) {
      // No thread available: prepare this claim here (PrepareOne itself never throws).
      std::promise<model::PrepareResult> p;
      p.set_value(PrepareOne(c, *turn, context));
      futures.push_back(p.get_future());
    }
  }
  for (size_t i = 0; i < claims.size(); ++i) out[claims[i].uid] = futures[i].get();
  return out;
}

std::map<std::string, std::string> Preparer::Unprepare(const std::vector<model::ClaimRef>& claims) {
  std::map<std::string, std::string> out;
  std::vector<std::string> uids;
  for (const auto& c : claims) uids.push_back(c.uid);
  std::vector<ClaimTurns::Turn> turns = turns_.Arrive(uids);
  for (size_t i = 0; i < claims.size(); ++i) {
    out[claims[i].uid] = UnprepareOne(claims[i], turns[i]);
    turns[i].Leave();
  }
  return out;
}

size_t Preparer::InLine(const std::string& uid) const { return turns_.waiting(uid); }

namespace {

// Why the prepare of `claim` must not run now that its turn has come ("" OK).
Status RefuseLatePrepare(const model::ClaimRef& claim, const ClaimTurns::Turn& turn,
                         const model::CallContext& context) {
  const std::string who = "ResourceClaim " + ClaimName(claim);
  if (Status st = context.Check(); !st.ok()) {
    return st.WithContext(who + ": not prepared, nothing was done");
  }
  if (turn.UnpreparedSinceArrival()) {
    return Status(Code::kConflict,
                  who +
                      ": not prepared: an unprepare of this claim completed while this prepare "
                      "waited for its turn, and the later unprepare wins; kubelet retries the "
                      "prepare if the claim is still needed");
  }
  return Status::Ok();
}

}  // namespace

model::PrepareResult Preparer::PrepareOne(const model::ClaimRef& claim, ClaimTurns::Turn& turn,
                                          const model::CallContext& context) {
  auto t0 = std::chrono::steady_clock::now();
  model::PrepareResult r;
  Expected<std::vector<model::PreparedDevice>> devices = Status();
  std::string reason;
  if (Status waited = turn.Wait(context); !waited.ok()) {
    reason = "cancelled";
    devices = waited.WithContext("ResourceClaim " + ClaimName(claim) +
                                 ": not prepared, nothing was done (it waited for an earlier "
                                 "operation on the claim)");
  } else if (Status refused = RefuseLatePrepare(claim, turn, context); !refused.ok()) {
    reason = "cancelled";
    devices = refused;
  } else {
    std::lock_guard<std::mutex> lock(ClaimMutex(claim.uid));
    try {
      devices = PrepareLocked(claim, context, reason);
    } catch (const std::exception& e) {
      // A safety net: nothing below is expected to throw, and Prepare must never throw.
      reason = "internal";
      devices = Internal("ResourceClaim " + ClaimName(claim) +
                         ": unexpected error while preparing: " + e.what());
    }
  }
  turn.Leave();
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

std::string Preparer::UnprepareOne(const model::ClaimRef& claim, ClaimTurns::Turn& turn) {
  auto t0 = std::chrono::steady_clock::now();
  Status st = turn.Wait(model::CallContext());
  if (st.ok()) {
    std::lock_guard<std::mutex> lock(ClaimMutex(claim.uid));
    st = UnprepareLocked(claim.uid);
  }
  if (!st.ok()) {
    st = st.WithContext("ResourceClaim " + ClaimName(claim));
    spdlog::warn("unprepare of {} failed: {}", ClaimLog(claim), st.message());
    Metrics().ClaimOperationDone(ClaimOperation::kUnprepare, "unprepare_failed", SecondsSince(t0));
    return st.message();
  }
  turn.MarkUnprepared();  // prepares that arrived before now must not prepare the claim again
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
  if (metadata_) RETURN_IF_ERROR(metadata_->Remove(uid));
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

std::string Preparer::StaleReason(const std::string& uid, const model::PreparedClaim& claim) const {
  auto obj = get_claim_(claim.ns, claim.name);
  if (!obj.ok()) {
    if (obj.status().code() == Code::kNotFound) return "it no longer exists";
    // Anything else, a 404 that is not the apiserver's NotFound for the claim included, proves
    // nothing: keep the claim and look again next time.
    spdlog::warn(
        "cannot check whether prepared ResourceClaim {}/{} (uid {}) is stale, keeping it: "
        "{}",
        claim.ns, claim.name, uid, obj.status().message());
    return "";
  }
  const std::string now = ClaimUid(*obj);
  if (now.empty()) return "";  // an answer without a UID proves nothing
  if (now != uid) return "it was deleted and re-created (now UID " + now + ")";
  const Json* allocation = JsonAt(*obj, {"status", "allocation"});
  if (allocation == nullptr || allocation->is_null()) return "its allocation was cleared";
  const Json* results = JsonAt(*allocation, {"devices", "results"});
  if (results == nullptr || !results->is_array()) return "";  // malformed: proves nothing
  std::set<std::string> pools;
  for (const Json& r : *results) {
    if (JsonString(r, {"driver"}) != options_.driver_name) continue;
    std::string pool = JsonString(r, {"pool"});
    if (pool == options_.pool_name) return "";
    pools.insert(pool);
  }
  std::string others;
  for (const auto& p : pools) others += (others.empty() ? "" : ", ") + p;
  return "it is no longer allocated to this node's pool " + options_.pool_name +
         (others.empty() ? " (no device of driver " + options_.driver_name + ")"
                         : " (its devices are in pool " + others + ")");
}

bool Preparer::ConfirmAndCleanUp(const std::string& uid, const model::PreparedClaim& claim) {
  const std::string who = "ResourceClaim " + claim.ns + "/" + claim.name + " (uid " + uid + ")";
  ClaimTurns::Turn turn = turns_.Arrive(uid);
  (void)turn.Wait(model::CallContext());
  auto current = checkpoint_->Find(uid);
  if (!current || *current != claim) return false;  // changed meanwhile: judged again next time
  const std::string why = StaleReason(uid, claim);
  if (why.empty()) {
    spdlog::info("keeping prepared {}: it looked stale, but a second read does not confirm it",
                 who);
    return false;
  }
  Status st;
  {
    std::lock_guard<std::mutex> lock(ClaimMutex(uid));
    st = UnprepareLocked(uid);
  }
  if (!st.ok()) {
    spdlog::warn("cleaning up {}: {}", who, st.message());
    return false;
  }
  turn.MarkUnprepared();
  spdlog::info("cleaned up {}: {} (confirmed by a second read)", who, why);
  return true;
}

int Preparer::CleanupStale() {
  // First look: one read per prepared claim, nothing changed.
  std::vector<std::pair<std::string, model::PreparedClaim>> suspects;
  for (const auto& [uid, claim] : checkpoint_->Snapshot().claims) {
    if (claim.state != model::ClaimState::kPrepareCompleted) continue;  // its prepare's business
    std::string why = StaleReason(uid, claim);
    if (why.empty()) continue;
    LOG_V(1, "ResourceClaim {}/{} (uid {}) looks stale ({}); reading it again in {} ms", claim.ns,
          claim.name, uid, why, options_.stale_confirm_delay.count());
    suspects.emplace_back(uid, claim);
  }
  if (suspects.empty()) return 0;
  // Second look, after a pause: a claim is cleaned up only when it still looks stale.
  if (options_.stale_confirm_delay.count() > 0) {
    if (options_.sleep) {
      options_.sleep(options_.stale_confirm_delay);
    } else {
      std::this_thread::sleep_for(options_.stale_confirm_delay);
    }
  }
  int cleaned = 0;
  for (const auto& [uid, claim] : suspects) cleaned += ConfirmAndCleanUp(uid, claim) ? 1 : 0;
  return cleaned;
}

}  // namespace accel_dra::claims
