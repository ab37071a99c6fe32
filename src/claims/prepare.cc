// Prepare of one claim, step by step (see Preparer's promises in preparer.h).

#include <chrono>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

#include "accel_dra/common/fault.h"
#include "accel_dra/common/json_path.h"
#include "accel_dra/common/log.h"
#include "preparer_internal.h"

namespace accel_dra::claims {
namespace {

const std::set<std::string> kNoNodes;

// "a, b, c".
std::string CommaList(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

const std::vector<std::string>& NodesOf(const model::PreparedDevice& d) {
  static const std::vector<std::string> kNone;
  return d.device_nodes ? *d.device_nodes : kNone;
}

}  // namespace

std::string_view ReadErrorReason(Code code) {
  switch (code) {
    case Code::kNotFound:
      return "claim_not_found";
    case Code::kInvalidArgument:
      return "invalid_config";
    case Code::kFailedPrecondition:
      return "claim_not_ready";
    default:
      return "apiserver";
  }
}

std::string FindConflict(const checkpoint::State& state, const std::string& uid,
                         const std::vector<model::PreparedDevice>& devices,
                         const std::set<std::string>& shared_nodes) {
  for (const auto& [other_uid, other] : state.claims) {
    if (other_uid == uid) continue;
    const std::string holder =
        "ResourceClaim " + other.ns + "/" + other.name + " (uid " + other_uid + ")";
    for (const auto& mine : devices) {
      for (const auto& theirs : other.devices) {
        if (mine.admin_access || theirs.admin_access) continue;
        if (mine.pool == theirs.pool && mine.device == theirs.device) {
          if (mine.share_id && theirs.share_id && *mine.share_id != *theirs.share_id) continue;
          return "device " + mine.device + " is already in use by " + holder +
                 "; a device is given to one claim at a time. The allocation may be stale: "
                 "delete the pod so the scheduler allocates again, or share one claim between "
                 "pods";
        }
        // One physical device under two names (shares of it are counted per name, so they do
        // not make an exception here).
        std::string same = model::PhysicalOverlap(mine.identity, NodesOf(mine), theirs.identity,
                                                  NodesOf(theirs), shared_nodes);
        if (same.empty()) continue;
        return "device " + mine.device + " is the physical device (" + same + ") that " + holder +
               " holds as " + theirs.device +
               "; a device is given to one claim at a time. Its name changed after that claim "
               "was prepared (an upgrade that renamed devices, or a device that moved), so the "
               "scheduler could not see it is taken: it stays held until the pod of " +
               other.ns + "/" + other.name +
               " is gone; delete that pod, or delete this pod so the scheduler allocates again";
      }
    }
  }
  return "";
}

Status Preparer::CheckHeldDevices(const model::ClaimRef& claim, const std::string& who) const {
  auto held = checkpoint_->Find(claim.uid);
  if (!held || held->state != model::ClaimState::kPrepareCompleted) return Status::Ok();
  auto inventory = inventory_();
  if (inventory == nullptr) return Status::Ok();
  for (const auto& d : held->devices) {
    model::HeldDeviceCheck c = model::CheckHeldDevice(d, *inventory);
    if (c.state != model::HeldDeviceState::kChanged &&
        c.state != model::HeldDeviceState::kVanished) {
      continue;
    }
    return FailedPrecondition(
        who + " was prepared on this node, but its " + c.message +
        "; the claim's containers cannot get the device they were prepared with. Delete the "
        "pod so the claim is unprepared and allocated again");
  }
  return Status::Ok();
}

Expected<std::vector<model::PreparedDevice>> Preparer::PrepareLocked(
    const model::ClaimRef& claim, const model::CallContext& context, std::string& reason) {
  const std::string who = "ResourceClaim " + ClaimName(claim);
  // A prepared claim whose device vanished or changed is never answered as if nothing happened.
  reason = "device_vanished";
  RETURN_IF_ERROR(CheckHeldDevices(claim, who));
  reason = "checkpoint";
  std::optional<Json> read;  // the claim, when the idempotent path has read it
  // Idempotency: a completed claim is answered from the checkpoint (once it is durable), unless
  // its allocation has changed since.
  if (auto done = checkpoint_->Find(claim.uid);
      done && done->state == model::ClaimState::kPrepareCompleted) {
    auto answer = AnswerFromCheckpoint(claim, who, *done, context, &read);
    if (!answer.ok()) {
      reason = context.Check().ok() ? "checkpoint" : "cancelled";
      return answer.status();
    }
    if (*answer) return std::move(**answer);
  }
  if (!read) {
    auto obj = ReadClaim(claim, who);
    if (!obj.ok()) {
      reason = ReadErrorReason(obj.status().code());
      return obj.status();
    }
    read = std::move(obj).value();
  }
  auto allocation = CheckAllocation(claim, who, std::move(*read));
  if (!allocation.ok()) {
    reason = ReadErrorReason(allocation.status().code());
    return allocation.status();
  }
  return PrepareFresh(claim, who, std::move(allocation).value(), context, reason);
}

Expected<std::optional<std::vector<model::PreparedDevice>>> Preparer::AnswerFromCheckpoint(
    const model::ClaimRef& claim, const std::string& who, const model::PreparedClaim& record,
    const model::CallContext& context, std::optional<Json>* read) {
  auto obj = ReadClaim(claim, who);
  std::string mismatch;
  if (!obj.ok()) {
    spdlog::warn("{}: answering from the checkpoint without re-checking its allocation: {}",
                 ClaimLog(claim), obj.status().message());
  } else {
    mismatch = AllocationMismatch(claim, *obj, record.devices);
  }
  if (mismatch.empty()) {
    RETURN_IF_ERROR(checkpoint_->Sync().WithContext(who + ": checkpoint"));
    return std::optional<std::vector<model::PreparedDevice>>(record.devices);
  }
  // The record is stale: the claim was allocated again (or re-created, or moved) since it was
  // prepared, so no container can be using the recorded devices under this claim any more.
  if (Status st = context.Check(); !st.ok()) {
    return st.WithContext(who + ": not prepared, nothing was done");
  }
  spdlog::warn(
      "{}: the prepared record is stale ({}); unpreparing it and preparing the claim again",
      ClaimLog(claim), mismatch);
  RETURN_IF_ERROR(UnprepareLocked(claim.uid).WithContext(
      who + ": unpreparing its stale prepared record (" + mismatch + ")"));
  *read = std::move(obj).value();
  return std::optional<std::vector<model::PreparedDevice>>();
}

Expected<std::vector<model::PreparedDevice>> Preparer::PrepareFresh(
    const model::ClaimRef& claim, const std::string& who, Allocation allocation,
    const model::CallContext& context, std::string& reason) {
  auto inventory = inventory_();
  reason = "allocation_mismatch";
  ASSIGN_OR_RETURN(auto devices, BuildRecords(claim, who, allocation, inventory.get()));
  reason = "cdi";
  if (metadata_ && options_.device_metadata) {
    RETURN_IF_ERROR(
        DeviceMetadataFiles::AddIds(options_.driver_name, claim.uid, devices).WithContext(who));
  }
  auto spec = BuildSpec(claim.uid, claim.ns, claim.name, devices, inventory.get());
  if (!spec.ok()) return spec.status().WithContext(who);
  auto spec_file = cdi::ClaimSpecFileName(options_.driver_name, claim.uid);
  if (!spec_file.ok()) return spec_file.status().WithContext(who);

  // The caller may have given up meanwhile (kubelet's deadline, a slow apiserver): then nothing
  // is done, or what was done is undone, so that a late prepare never leaves the claim prepared.
  auto gave_up = [&](std::string_view before) {
    Status st = context.Check();
    if (st.ok()) return st;
    reason = "cancelled";
    return st.WithContext(who + ": not prepared, nothing left behind (the caller gave up before " +
                          std::string(before) + ")");
  };
  RETURN_IF_ERROR(gave_up("it was recorded"));
  if (Status st = RecordStarted(claim, who, devices, *spec_file,
                                inventory ? inventory->shared_device_nodes() : kNoNodes);
      !st.ok()) {
    reason = st.code() == Code::kFailedPrecondition ? "device_conflict" : "checkpoint";
    return st;
  }
  CrashPoint("prepare-after-checkpoint-started");
  // From here on a failure undoes the device settings (recorded in the PrepareStarted entry, so
  // a crash is undone by Recover()) and takes the entry out again.
  auto undo = [&] {
    Status reset = ResetTimeSlices(claim.uid, devices, ClaimLog(claim));
    if (!reset.ok()) spdlog::error("{}: {}", ClaimLog(claim), reset.message());
    RollBackStarted(claim);
  };
  if (Status st = gave_up("device settings were applied"); !st.ok()) {
    undo();
    return st;
  }
  if (Status st = ApplyTimeSlices(devices, ClaimLog(claim)); !st.ok()) {
    reason = "time_slice";
    undo();
    return st.WithContext(who);
  }
  CrashPoint("prepare-after-device-settings");
  if (Status st = gave_up("its CDI spec was written"); !st.ok()) {
    undo();
    return st;
  }
  if (Status st = WriteDriverInfo(devices, inventory.get()); !st.ok()) {
    undo();
    return st.WithContext(who);
  }
  if (Status st = cdi_->WriteClaimSpec(claim.uid, *spec); !st.ok()) {
    undo();  // an atomic write that failed left no file
    return st.WithContext(who + ": writing the CDI spec");
  }
  auto remove_spec = [&] {
    if (Status rm = cdi_->RemoveClaimSpec(claim.uid); !rm.ok()) {
      spdlog::error("{}: {}", ClaimLog(claim), rm.message());  // Recover() removes it
    }
  };
  // Same step: the device metadata (KEP-5304), all of it or nothing.
  if (Status st = WriteMetadata(claim, allocation, devices, inventory.get()); !st.ok()) {
    remove_spec();
    undo();
    return st.WithContext(who);
  }
  CrashPoint("prepare-after-cdi-write");
  if (Status st = gave_up("it was recorded as prepared"); !st.ok()) {
    remove_spec();
    RemoveMetadataLogged(claim);
    undo();
    return st;
  }
  reason = "checkpoint";
  RETURN_IF_ERROR(RecordCompleted(claim, who));
  CrashPoint("prepare-after-checkpoint-completed");
  return devices;
}

Status Preparer::WriteDriverInfo(const std::vector<model::PreparedDevice>& devices,
                                 const model::Inventory* inventory) {
  if (options_.driver_info_dir.empty() || inventory == nullptr) return Status::Ok();
  for (const auto& d : devices) {
    const model::Device* dev = inventory->Find(d.device);
    if (dev == nullptr) continue;
    RETURN_IF_ERROR(
        EnsureDriverInfoFiles(cdi_->env(), DriverInfoFilesFor(options_.driver_info_dir, *dev)));
  }
  return Status::Ok();
}

Status Preparer::WriteMetadata(const model::ClaimRef& claim, const Allocation& allocation,
                               const std::vector<model::PreparedDevice>& devices,
                               const model::Inventory* inventory) {
  if (!metadata_ || !options_.device_metadata) return Status::Ok();
  MetadataClaim mc{
      claim.ns, claim.name, claim.uid,
      JsonString(allocation.claim, {"metadata", "annotations", kPodClaimNameAnnotation})};
  std::map<std::string, std::string> full_requests;  // base → as allocated ("req/sub")
  for (const Json& r : *allocation.results) {
    if (JsonString(r, {"driver"}) != options_.driver_name) continue;
    const std::string request = JsonString(r, {"request"});
    full_requests.emplace(BaseRequestName(request), request);
  }
  return metadata_->Write(mc, devices, full_requests, inventory);
}

void Preparer::RemoveMetadataLogged(const model::ClaimRef& claim) {
  if (!metadata_) return;
  if (Status rm = metadata_->Remove(claim.uid); !rm.ok()) {
    spdlog::error("{}: {}", ClaimLog(claim), rm.message());  // Recover() removes it
  }
}

Expected<Json> Preparer::ReadClaim(const model::ClaimRef& claim, const std::string& who) const {
  auto obj = get_claim_(claim.ns, claim.name);
  if (obj.ok()) return obj;
  const Status& st = obj.status();
  if (st.code() == Code::kNotFound) {
    return NotFound(who + " not found; it was deleted or never existed");
  }
  if (st.http_status() == 404) {
    // Not the apiserver's NotFound for this claim: typically an apiserver that does not serve
    // this resource.k8s.io version (yet, or any more) during an upgrade.
    return Status(st.code(), "cannot read " + who +
                                 ": the apiserver answered HTTP 404 without saying that the "
                                 "claim does not exist (it may not serve this resource.k8s.io "
                                 "version right now, e.g. during an upgrade); kubelet retries: " +
                                 st.message());
  }
  return Status(st.code(), "cannot read " + who + ": " + st.message());
}

Expected<Preparer::Allocation> Preparer::CheckAllocation(const model::ClaimRef& claim,
                                                         const std::string& who, Json obj) const {
  Allocation a;
  a.claim = std::move(obj);
  std::string uid = ClaimUid(a.claim);
  if (uid != claim.uid) {
    return FailedPrecondition(who + " has " +
                              (uid.empty() ? std::string("no metadata.uid") : "UID " + uid) +
                              " but kubelet asked for UID " + claim.uid +
                              ": the claim was deleted and re-created; the pod must be re-created");
  }
  const Json* alloc_devices = JsonAt(a.claim, {"status", "allocation", "devices"});
  if (alloc_devices == nullptr || JsonAt(*alloc_devices, {"results"}) == nullptr) {
    return FailedPrecondition(who + " is not allocated; the scheduler has not placed it yet");
  }
  // Also checks that results[] is an array of objects and that our results name a request.
  auto configs = config::ResolveAllocationConfigs(*alloc_devices, options_.driver_name);
  if (!configs.ok()) return InvalidArgument(who + ": " + configs.status().message());
  a.configs = std::move(configs).value();
  a.results = &alloc_devices->at("results");
  return a;
}

namespace {

// What identifies one result of a claim's allocation for the idempotency check: request (its
// base name, as recorded), pool, device, share ID. (Not admin access: format-1 records may lack
// it, and it does not change which device the claim holds.) A record rebuilt from its CDI spec has
// no request names (all requests): then only pool, device and share ID are compared.
using ResultKey = std::tuple<std::string, std::string, std::string, std::string>;

std::string Describe(const std::multiset<ResultKey>& keys) {
  std::string out;
  for (const auto& [request, pool, device, share] : keys) {
    out += (out.empty() ? "" : ", ") + pool + "/" + device + (share.empty() ? "" : "#" + share) +
           " for " + request;
  }
  return out.empty() ? "none" : out;
}

}  // namespace

std::string Preparer::AllocationMismatch(const model::ClaimRef& claim, const Json& obj,
                                         const std::vector<model::PreparedDevice>& recorded) const {
  const std::string uid = ClaimUid(obj);
  if (uid != claim.uid) {
    return "the claim now has " + (uid.empty() ? std::string("no UID") : "UID " + uid);
  }
  const Json* results = JsonAt(obj, {"status", "allocation", "devices", "results"});
  if (results == nullptr || !results->is_array()) return "the claim is no longer allocated";
  std::multiset<ResultKey> now;
  for (const Json& r : *results) {
    if (JsonString(r, {"driver"}) != options_.driver_name) continue;
    now.emplace(BaseRequestName(JsonString(r, {"request"})), JsonString(r, {"pool"}),
                JsonString(r, {"device"}), JsonString(r, {"shareID"}));
  }
  std::multiset<ResultKey> then;
  bool any_request = false;  // a record rebuilt from its CDI spec has no request names (= all)
  for (const auto& d : recorded) {
    if (d.request_names.empty()) {
      any_request = true;
      then.emplace("", d.pool, d.device, d.share_id.value_or(""));
    }
    for (const auto& request : d.request_names) {
      then.emplace(BaseRequestName(request), d.pool, d.device, d.share_id.value_or(""));
    }
  }
  if (any_request) {  // then compare the devices only
    auto without_requests = [](const std::multiset<ResultKey>& keys) {
      std::multiset<ResultKey> out;
      for (const auto& k : keys) out.emplace("", std::get<1>(k), std::get<2>(k), std::get<3>(k));
      return out;
    };
    now = without_requests(now);
    then = without_requests(then);
  }
  if (now == then) return "";
  return "recorded devices " + Describe(then) + ", allocated now " + Describe(now);
}

Expected<model::PreparedDevice> Preparer::RecordFor(const model::ClaimRef& claim,
                                                    const std::string& who, const Json& result,
                                                    const Allocation& allocation,
                                                    const model::Inventory* inventory) const {
  std::string pool = JsonString(result, {"pool"});
  std::string device = JsonString(result, {"device"});
  std::string request = JsonString(result, {"request"});
  if (pool != options_.pool_name) {
    return FailedPrecondition(who + ": device " + device + " is allocated from pool " + pool +
                              ", but this plugin serves pool " + options_.pool_name +
                              " (another node); the claim cannot be used on this node");
  }
  const model::Device* dev = inventory != nullptr ? inventory->Find(device) : nullptr;
  if (dev == nullptr) {
    return FailedPrecondition(who + ": device " + device +
                              " is not published by this node (it may have been removed or "
                              "the allocation is stale); delete the pod to allocate again");
  }
  if (!dev->driver_stack_problem.empty()) {
    return FailedPrecondition(who + ": device " + device +
                              " cannot be given its driver stack: " + dev->driver_stack_problem);
  }
  model::PreparedDevice d;
  d.request_names = {BaseRequestName(request)};
  d.pool = pool;
  d.device = device;
  if (const Json* share = JsonAt(result, {"shareID"}); share != nullptr && share->is_string()) {
    d.share_id = share->get<std::string>();
  }
  auto id = cdi::ClaimDeviceId(options_.driver_name, claim.uid, device);
  if (!id.ok()) return id.status().WithContext(who);
  d.cdi_device_ids = {*id};
  // Everything needed to re-create the CDI spec without the claim (see Recover()).
  auto cfg = allocation.configs.find(request);
  if (cfg != allocation.configs.end()) d.sharing = cfg->second;
  d.admin_access = JsonBool(result, {"adminAccess"});
  if (d.sharing.strategy == model::SharingStrategy::kTimeSlicing) {
    d.time_slice = TimeSliceFor(*dev, d.sharing.interval);
    // Admin access never changes the device under the claim that holds it: its interval is
    // advisory (not applied, so never reset by it either).
    if (d.admin_access) d.time_slice = {model::TimeSliceControl::kNone, "", d.time_slice->setting};
  }
  d.device_nodes = dev->device_nodes;
  d.mounts = dev->read_only_mounts;
  for (auto& f : DriverInfoFilesFor(options_.driver_info_dir, *dev)) d.mounts->push_back(f.mount);
  d.identity = dev->identity;
  return d;
}

Expected<std::vector<model::PreparedDevice>> Preparer::BuildRecords(
    const model::ClaimRef& claim, const std::string& who, const Allocation& allocation,
    const model::Inventory* inventory) const {
  std::vector<model::PreparedDevice> out;
  std::set<std::string> advisory;  // TimeSlicing devices whose time slice cannot be set
  std::set<std::string> other_drivers;
  for (const auto& result : *allocation.results) {
    std::string driver = JsonString(result, {"driver"});
    if (driver != options_.driver_name) {
      other_drivers.insert(driver);
      continue;
    }
    ASSIGN_OR_RETURN(model::PreparedDevice d, RecordFor(claim, who, result, allocation, inventory));
    if (d.time_slice && !d.TimeSliceEnforced()) advisory.insert(d.device);
    out.push_back(std::move(d));
  }
  if (out.empty()) {
    std::string others = CommaList(other_drivers);
    return FailedPrecondition(who + " has no devices of driver " + options_.driver_name +
                              (others.empty() ? "" : " (its devices belong to: " + others + ")"));
  }
  if (!advisory.empty()) {
    spdlog::info(
        "{}: the TimeSlicing interval is advisory on device(s) {}: their time slice cannot be "
        "set by the driver (containers see ..._TIMESLICE_ENFORCED=false)",
        ClaimLog(claim), CommaList(advisory));
  }
  return out;
}

Status Preparer::RecordStarted(const model::ClaimRef& claim, const std::string& who,
                               const std::vector<model::PreparedDevice>& devices,
                               const std::string& spec_file,
                               const std::set<std::string>& shared_nodes) {
  // Record the intent (and claim the devices) before any side effect. Visible, not durable: it
  // must survive a crash of this process, but after a power loss the CDI spec (written without
  // fsync) is gone or an unowned file that Recover() removes, so there is nothing to roll back.
  std::string conflict;
  bool recorded = false;
  Status st = checkpoint_->Update(
      [&](checkpoint::State& s) {
        conflict = FindConflict(s, claim.uid, devices, shared_nodes);
        if (!conflict.empty()) return;
        model::PreparedClaim pc;
        pc.ns = claim.ns;
        pc.name = claim.name;
        pc.state = model::ClaimState::kPrepareStarted;
        pc.devices = devices;
        pc.cdi_spec_file = spec_file;
        pc.prepare_started_at = std::chrono::system_clock::now();
        s.claims[claim.uid] = std::move(pc);
        recorded = true;
      },
      Durability::kVisible);
  if (!conflict.empty()) return FailedPrecondition(who + ": " + conflict);
  if (!st.ok()) {
    // The entry stays in memory after a failed write; it must not hold the devices.
    if (recorded) RollBackStarted(claim);
    return st.WithContext(who + ": recording the claim in the checkpoint");
  }
  return Status();
}

void Preparer::RollBackStarted(const model::ClaimRef& claim) {
  Status undo = checkpoint_->Update([&](checkpoint::State& s) { s.claims.erase(claim.uid); });
  if (!undo.ok())
    spdlog::warn("rolling back {} in the checkpoint: {}", ClaimLog(claim), undo.message());
}

Status Preparer::RecordCompleted(const model::ClaimRef& claim, const std::string& who) {
  bool vanished = false;
  Status st = checkpoint_->Update([&](checkpoint::State& s) {
    auto it = s.claims.find(claim.uid);
    if (it == s.claims.end()) {
      vanished = true;  // another plugin instance unprepared or rolled it back meanwhile
      return;
    }
    it->second.state = model::ClaimState::kPrepareCompleted;
    it->second.prepare_completed_at = std::chrono::system_clock::now();
  });
  if (st.ok() && vanished) {
    (void)cdi_->RemoveClaimSpec(claim.uid);
    RemoveMetadataLogged(claim);
    return Status(Code::kConflict, who +
                                       " was unprepared by another plugin instance while this "
                                       "one prepared it; kubelet will retry");
  }
  // On failure memory says PrepareCompleted (with its spec): a retry answers once a Sync()
  // succeeds; a crash leaves PrepareStarted on disk, which Recover() rolls back.
  if (!st.ok()) return st.WithContext(who + ": recording the prepared claim in the checkpoint");
  return Status();
}

}  // namespace accel_dra::claims
