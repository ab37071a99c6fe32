#include "accel_dra/claims/preparer.h"

#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <initializer_list>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

#include "accel_dra/common/fault.h"
#include "accel_dra/common/json_path.h"
#include "accel_dra/common/log.h"
#include "accel_dra/config/device_config.h"

namespace accel_dra::claims {
namespace {

using Json = nlohmann::json;
using checkpoint::ClaimState;

std::string ClaimName(const model::ClaimRef& c) { return c.ns + "/" + c.name; }

// metadata.uid of a ResourceClaim, "" when missing or malformed.
std::string ClaimUid(const Json& claim) {
  const Json* v = JsonAt(claim, {"metadata", "uid"});
  return v != nullptr && v->is_string() ? v->get<std::string>() : "";
}

model::PreparedDevice ToWire(const checkpoint::PreparedDevice& d) {
  model::PreparedDevice w;
  w.request_names = d.request_names;
  w.pool = d.pool;
  w.device = d.device;
  w.cdi_device_ids = d.cdi_device_ids;
  w.share_id = d.share_id;
  return w;
}

// Why `devices` of claim `uid` cannot be prepared next to the claims already in `state`, or "".
std::string FindConflict(const checkpoint::State& state, const std::string& uid,
                         const std::vector<checkpoint::PreparedDevice>& devices) {
  for (const auto& [other_uid, other] : state.claims) {
    if (other_uid == uid) continue;
    for (const auto& mine : devices) {
      for (const auto& theirs : other.devices) {
        if (mine.pool != theirs.pool || mine.device != theirs.device) continue;
        bool admin =
            JsonBool(mine.config, {"adminAccess"}) || JsonBool(theirs.config, {"adminAccess"});
        bool shares = mine.share_id && theirs.share_id && *mine.share_id != *theirs.share_id;
        if (admin || shares) continue;
        return "device " + mine.device + " is already in use by ResourceClaim " + other.ns + "/" +
               other.name + " (uid " + other_uid +
               "); a device is given to one claim at a time. The allocation may be stale: "
               "delete the pod so the scheduler allocates again, or share one claim between pods";
      }
    }
  }
  return "";
}

// The CDI devices of a claim, derived from what the checkpoint records for it (so a spec can be
// re-created after a reboot, without the ResourceClaim): one CDI device per physical device, in
// the order of the allocation results. Device nodes come from the record ("deviceNodes"), else
// from the inventory. Two results naming one device (shares, admin access) must agree on the
// sharing settings, since the CDI device is the same.
Expected<std::vector<cdi::PreparedDevice>> CdiDevicesFor(
    const std::vector<checkpoint::PreparedDevice>& devices, const model::Inventory* inventory) {
  std::vector<cdi::PreparedDevice> out;
  std::map<std::pair<std::string, std::string>, size_t> seen;
  for (const auto& d : devices) {
    cdi::PreparedDevice cd;
    cd.device_name = d.device;
    cd.pool = d.pool;
    cd.index = static_cast<int>(out.size());
    if (const Json* s = JsonAt(d.config, {"sharing"}); s != nullptr) {
      cd.sharing_strategy = JsonString(*s, {"strategy"});
      cd.timeslice_interval = JsonString(*s, {"interval"});
      cd.partition_count = JsonString(*s, {"partitionCount"});
    }
    if (const Json* ts = JsonAt(d.config, {"timeSlice"}); ts != nullptr) {
      cd.timeslice_enforced = JsonString(*ts, {"control"}) == "nvidia-smi";
    }
    const model::Device* dev = inventory ? inventory->Find(d.device) : nullptr;
    if (const Json* nodes = JsonAt(d.config, {"deviceNodes"});
        nodes != nullptr && nodes->is_array()) {
      for (const auto& n : *nodes) {
        if (n.is_string()) cd.device_node_paths.push_back(n.get<std::string>());
      }
    } else if (dev != nullptr) {
      cd.device_node_paths = dev->device_nodes;
    }
    if (const Json* mounts = JsonAt(d.config, {"mounts"});
        mounts != nullptr && mounts->is_array()) {
      for (const auto& m : *mounts) {
        cdi::ReadOnlyMount rm{JsonString(m, {"hostPath"}), JsonString(m, {"containerPath"})};
        if (!rm.host_path.empty() && !rm.container_path.empty()) {
          cd.read_only_mounts.push_back(std::move(rm));
        }
      }
    } else if (dev != nullptr) {  // recorded before mounts were: what the device has now
      for (const auto& m : dev->read_only_mounts) {
        cd.read_only_mounts.push_back({m.host_path, m.container_path});
      }
    }
    auto [it, inserted] = seen.emplace(std::make_pair(d.pool, d.device), out.size());
    if (!inserted) {
      const cdi::PreparedDevice& first = out[it->second];
      if (first.sharing_strategy != cd.sharing_strategy ||
          first.timeslice_interval != cd.timeslice_interval ||
          first.partition_count != cd.partition_count) {
        return InvalidArgument("device " + d.device +
                               " is allocated to two requests of the claim with different "
                               "sharing settings; give both requests the same DeviceConfig");
      }
      continue;
    }
    out.push_back(std::move(cd));
  }
  return out;
}

// What the checkpoint records about a TimeSlicing device: how its time slice is set, on which
// device identifier, and the nvidia-smi setting (Default=0, Short=1, Medium=2, Long=3).
Json TimeSliceRecord(const model::Device& dev, config::TimeSliceInterval interval) {
  int setting = 0;
  switch (interval) {
    case config::TimeSliceInterval::kDefault:
      setting = 0;
      break;
    case config::TimeSliceInterval::kShort:
      setting = 1;
      break;
    case config::TimeSliceInterval::kMedium:
      setting = 2;
      break;
    case config::TimeSliceInterval::kLong:
      setting = 3;
      break;
  }
  bool smi =
      dev.timeslice_control == model::TimeSliceControl::kNvidiaSmi && !dev.timeslice_target.empty();
  Json j = {{"control", smi ? "nvidia-smi" : "none"}, {"setting", setting}};
  if (smi) j["target"] = dev.timeslice_target;
  return j;
}

// The time slice a checkpointed device had applied with nvidia-smi: {target, setting}.
struct AppliedTimeSlice {
  std::string target;
  int setting = 0;
};
std::optional<AppliedTimeSlice> AppliedTimeSliceOf(const checkpoint::PreparedDevice& d) {
  const Json* ts = JsonAt(d.config, {"timeSlice"});
  if (ts == nullptr || JsonString(*ts, {"control"}) != "nvidia-smi") return std::nullopt;
  const Json* setting = JsonAt(*ts, {"setting"});
  return AppliedTimeSlice{
      JsonString(*ts, {"target"}),
      setting != nullptr && setting->is_number_integer() ? setting->get<int>() : 0};
}

Json MountsJson(const std::vector<model::FileMount>& mounts) {
  Json out = Json::array();
  for (const auto& m : mounts) {
    out.push_back({{"hostPath", m.host_path}, {"containerPath", m.container_path}});
  }
  return out;
}

}  // namespace

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

Status Preparer::SetTimeSlice(const std::string& target, int setting) {
  CommandRunner* runner = options_.runner != nullptr ? options_.runner : CommandRunner::Default();
  std::vector<std::string> argv = {options_.nvidia_smi, "compute-policy",       "-i", target,
                                   "--set-timeslice",   std::to_string(setting)};
  const std::string shown = CommandLineForDisplay(argv);
  auto r = runner->Run(argv, options_.command_timeout);
  if (!r.ok()) {
    return Status(r.status().code() == Code::kDeadlineExceeded ? Code::kDeadlineExceeded
                                                               : Code::kFailedPrecondition,
                  r.status().message() +
                      " (install the NVIDIA driver's nvidia-smi or point --nvidia-smi at it)");
  }
  if (r->exit_code != 0) {
    std::string tail = OutputTail(r->output);
    return FailedPrecondition(shown + " failed with exit code " + std::to_string(r->exit_code) +
                              (tail.empty() ? "" : ": " + tail) +
                              " (the GPU may not support time-slice settings; use the Default "
                              "interval or another strategy)");
  }
  spdlog::info("time slice of device {} set to {} ({})", target, setting, shown);
  return Status();
}

Status Preparer::ResetTimeSlices(const std::string& uid,
                                 const std::vector<checkpoint::PreparedDevice>& devices) {
  std::set<std::string> targets;
  for (const auto& d : devices) {
    if (auto ts = AppliedTimeSliceOf(d)) targets.insert(ts->target);
  }
  if (targets.empty()) return Status();
  // Devices another claim still has a setting on keep it.
  for (const auto& [other_uid, other] : checkpoint_->Snapshot().claims) {
    if (other_uid == uid) continue;
    for (const auto& d : other.devices) {
      if (auto ts = AppliedTimeSliceOf(d)) targets.erase(ts->target);
    }
  }
  Status first;
  for (const auto& t : targets) {
    Status st = SetTimeSlice(t, 0);
    if (!st.ok() && first.ok()) first = st.WithContext("resetting the time slice of device " + t);
  }
  return first;
}

Expected<cdi::Spec> Preparer::BuildSpec(const std::string& uid, const std::string& ns,
                                        const std::string& name,
                                        const std::vector<checkpoint::PreparedDevice>& devices,
                                        const model::Inventory* inventory) const {
  ASSIGN_OR_RETURN(auto cdi_devices, CdiDevicesFor(devices, inventory));
  cdi::ClaimSpecExtras extras;
  if (!options_.inspect_tool.empty()) {
    extras.read_only_mounts.push_back(
        {options_.inspect_tool, std::string(model::kInspectToolContainerPath)});
  }
  if (options_.testing_expose_all_devices && inventory != nullptr) {
    std::set<std::string> held;
    std::set<std::string> nodes;
    for (const auto& d : cdi_devices) {
      held.insert(d.device_name);
      nodes.insert(d.device_node_paths.begin(), d.device_node_paths.end());
    }
    for (const auto& d : inventory->devices()) {
      if (held.count(d.name) != 0) continue;
      extras.unclaimed_device_names.push_back(d.name);
      for (const auto& n : d.device_nodes) {
        if (nodes.insert(n).second) extras.unclaimed_device_node_paths.push_back(n);
      }
    }
  }
  auto spec = cdi::BuildClaimSpec(options_.driver_name, {uid, ns, name}, cdi_devices, extras);
  if (!spec.ok()) return spec.status().WithContext("building the CDI spec");
  return spec;
}

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
  {
    std::lock_guard<std::mutex> lock(ClaimMutex(claim.uid));
    try {
      devices = PrepareLocked(claim);
    } catch (const std::exception& e) {
      // A safety net: nothing below is expected to throw, and Prepare must never throw.
      devices = Internal("ResourceClaim " + ClaimName(claim) +
                         ": unexpected error while preparing: " + e.what());
    }
  }
  auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  if (devices.ok()) {
    r.devices = std::move(devices).value();
    LOG_V(1, "prepared ResourceClaim {} (uid {}): {} devices in {} us", ClaimName(claim), claim.uid,
          r.devices.size(), us);
  } else {
    r.error = devices.status().message();
    spdlog::warn("prepare of ResourceClaim {} (uid {}) failed: {}", ClaimName(claim), claim.uid,
                 r.error);
  }
  return r;
}

Expected<std::vector<model::PreparedDevice>> Preparer::PrepareLocked(const model::ClaimRef& claim) {
  const std::string who = "ResourceClaim " + ClaimName(claim);
  // Idempotency: a completed claim is answered from the checkpoint (once it is durable).
  if (auto done = checkpoint_->Find(claim.uid);
      done && done->state == ClaimState::kPrepareCompleted) {
    RETURN_IF_ERROR(checkpoint_->Sync().WithContext(who + ": checkpoint"));
    std::vector<model::PreparedDevice> out;
    for (const auto& d : done->devices) out.push_back(ToWire(d));
    return out;
  }

  auto obj = get_claim_(claim.ns, claim.name);
  if (!obj.ok()) {
    if (obj.status().code() == Code::kNotFound) {
      return NotFound(who + " not found; it was deleted or never existed");
    }
    return Status(obj.status().code(), "cannot read " + who + ": " + obj.status().message());
  }
  const Json& c = *obj;
  std::string uid = ClaimUid(c);
  if (uid != claim.uid) {
    return FailedPrecondition(who + " has " +
                              (uid.empty() ? std::string("no metadata.uid") : "UID " + uid) +
                              " but kubelet asked for UID " + claim.uid +
                              ": the claim was deleted and re-created; the pod must be re-created");
  }
  const Json* alloc_devices = JsonAt(c, {"status", "allocation", "devices"});
  if (alloc_devices == nullptr || JsonAt(*alloc_devices, {"results"}) == nullptr) {
    return FailedPrecondition(who + " is not allocated; the scheduler has not placed it yet");
  }
  // Also checks that results[] is an array of objects and that our results name a request.
  auto configs = config::ResolveAllocationConfigs(*alloc_devices, options_.driver_name);
  if (!configs.ok()) return InvalidArgument(who + ": " + configs.status().message());
  const Json& results = alloc_devices->at("results");

  auto inventory = inventory_();
  std::vector<checkpoint::PreparedDevice> ck_devices;
  std::set<std::string> advisory;  // TimeSlicing devices whose time slice cannot be set
  std::set<std::string> other_drivers;
  for (const auto& res : results) {
    std::string driver = JsonString(res, {"driver"});
    if (driver != options_.driver_name) {
      other_drivers.insert(driver);
      continue;
    }
    std::string pool = JsonString(res, {"pool"});
    std::string device = JsonString(res, {"device"});
    std::string request = JsonString(res, {"request"});
    if (pool != options_.pool_name) {
      return FailedPrecondition(who + ": device " + device + " is allocated from pool " + pool +
                                ", but this plugin serves pool " + options_.pool_name +
                                " (another node); the claim cannot be used on this node");
    }
    const model::Device* dev = inventory ? inventory->Find(device) : nullptr;
    if (dev == nullptr) {
      return FailedPrecondition(who + ": device " + device +
                                " is not published by this node (it may have been removed or "
                                "the allocation is stale); delete the pod to allocate again");
    }
    auto cfg_it = configs->find(request);
    config::DeviceConfig cfg = cfg_it != configs->end() ? cfg_it->second : config::DeviceConfig{};
    checkpoint::PreparedDevice ck;
    ck.request_names = {BaseRequestName(request)};
    ck.pool = pool;
    ck.device = device;
    if (const Json* share = JsonAt(res, {"shareID"}); share != nullptr && share->is_string()) {
      ck.share_id = share->get<std::string>();
    }
    auto id = cdi::ClaimDeviceId(options_.driver_name, claim.uid, device);
    if (!id.ok()) return id.status().WithContext(who);
    ck.cdi_device_ids = {*id};
    // Everything needed to re-create the CDI spec without the claim (see Recover()).
    Json timeslice = nullptr;
    if (cfg.strategy == config::SharingStrategy::kTimeSlicing) {
      timeslice = TimeSliceRecord(*dev, cfg.interval);
      if (timeslice["control"] == "none") advisory.insert(device);
    }
    ck.config = {{"sharing",
                  {{"strategy", cfg.StrategyName()},
                   {"interval", cfg.IntervalName()},
                   {"partitionCount", cfg.PartitionCountString()}}},
                 {"adminAccess", JsonBool(res, {"adminAccess"})},
                 {"deviceNodes", dev->device_nodes},
                 {"mounts", MountsJson(dev->read_only_mounts)}};
    if (!timeslice.is_null()) ck.config["timeSlice"] = std::move(timeslice);
    ck_devices.push_back(std::move(ck));
  }
  if (ck_devices.empty()) {
    std::string others;
    for (const auto& d : other_drivers) others += (others.empty() ? "" : ", ") + d;
    return FailedPrecondition(who + " has no devices of driver " + options_.driver_name +
                              (others.empty() ? "" : " (its devices belong to: " + others + ")"));
  }
  if (!advisory.empty()) {
    std::string names;
    for (const auto& d : advisory) names += (names.empty() ? "" : ", ") + d;
    spdlog::info(
        "{}: the TimeSlicing interval is advisory on device(s) {}: their time slice cannot be "
        "set by the driver (containers see ..._TIMESLICE_ENFORCED=false)",
        who, names);
  }
  auto spec = BuildSpec(claim.uid, claim.ns, claim.name, ck_devices, inventory.get());
  if (!spec.ok()) return spec.status().WithContext(who);
  auto spec_file = cdi::ClaimSpecFileName(options_.driver_name, claim.uid);
  if (!spec_file.ok()) return spec_file.status().WithContext(who);

  // Record the intent (and claim the devices) before any side effect. Visible, not durable: it
  // must survive a crash of this process, but after a power loss the CDI spec (written without
  // fsync) is gone or an unowned file that Recover() removes, so there is nothing to roll back.
  std::string conflict;
  bool recorded = false;
  Status st = checkpoint_->Update(
      [&](checkpoint::State& s) {
        conflict = FindConflict(s, claim.uid, ck_devices);
        if (!conflict.empty()) return;
        checkpoint::PreparedClaim pc;
        pc.ns = claim.ns;
        pc.name = claim.name;
        pc.state = ClaimState::kPrepareStarted;
        pc.devices = ck_devices;
        pc.cdi_spec_file = *spec_file;
        pc.prepare_started_at = std::chrono::system_clock::now();
        s.claims[claim.uid] = std::move(pc);
        recorded = true;
      },
      Durability::kVisible);
  // Takes the PrepareStarted entry out again. If this write fails too, memory is still right and
  // the next successful write (or Recover() after a crash) makes the disk agree.
  auto roll_back = [&] {
    Status undo = checkpoint_->Update([&](checkpoint::State& s) { s.claims.erase(claim.uid); });
    if (!undo.ok()) spdlog::warn("rolling back {} in the checkpoint: {}", who, undo.message());
  };
  if (!conflict.empty()) return FailedPrecondition(who + ": " + conflict);
  if (!st.ok()) {
    // The entry stays in memory after a failed write; it must not hold the devices.
    if (recorded) roll_back();
    return st.WithContext(who + ": recording the claim in the checkpoint");
  }
  CrashPoint("prepare-after-checkpoint-started");

  // Device settings, recorded in the PrepareStarted entry (so a crash from here on is undone).
  std::set<std::string> applied;
  auto undo_settings = [&] {
    Status undo = ResetTimeSlices(claim.uid, ck_devices);
    if (!undo.ok()) spdlog::error("{}: {}", who, undo.message());
  };
  for (const auto& d : ck_devices) {
    auto ts = AppliedTimeSliceOf(d);
    if (!ts || !applied.insert(ts->target).second) continue;
    st = SetTimeSlice(ts->target, ts->setting);
    if (!st.ok()) {
      undo_settings();
      roll_back();
      return st.WithContext(who + ": applying the TimeSlicing interval to device " + d.device);
    }
  }
  CrashPoint("prepare-after-device-settings");

  st = cdi_->WriteClaimSpec(claim.uid, *spec);
  if (!st.ok()) {
    // An atomic write that failed left no file; undo the device settings.
    undo_settings();
    roll_back();
    return st.WithContext(who + ": writing the CDI spec");
  }
  CrashPoint("prepare-after-cdi-write");

  bool vanished = false;
  st = checkpoint_->Update([&](checkpoint::State& s) {
    auto it = s.claims.find(claim.uid);
    if (it == s.claims.end()) {
      vanished = true;  // another plugin instance unprepared or rolled it back meanwhile
      return;
    }
    it->second.state = ClaimState::kPrepareCompleted;
    it->second.prepare_completed_at = std::chrono::system_clock::now();
  });
  if (st.ok() && vanished) {
    (void)cdi_->RemoveClaimSpec(claim.uid);
    return Status(Code::kConflict, who +
                                       " was unprepared by another plugin instance while this "
                                       "one prepared it; kubelet will retry");
  }
  // On failure memory says PrepareCompleted (with its spec): a retry answers once a Sync()
  // succeeds; a crash leaves PrepareStarted on disk, which Recover() rolls back.
  if (!st.ok()) return st.WithContext(who + ": recording the prepared claim in the checkpoint");
  CrashPoint("prepare-after-checkpoint-completed");

  std::vector<model::PreparedDevice> out;
  for (const auto& d : ck_devices) out.push_back(ToWire(d));
  return out;
}

std::string Preparer::UnprepareOne(const model::ClaimRef& claim) {
  Status st;
  {
    std::lock_guard<std::mutex> lock(ClaimMutex(claim.uid));
    st = UnprepareLocked(claim.uid);
  }
  if (!st.ok()) {
    st = st.WithContext("ResourceClaim " + ClaimName(claim));
    spdlog::warn("unprepare of ResourceClaim {} (uid {}) failed: {}", ClaimName(claim), claim.uid,
                 st.message());
    return st.message();
  }
  LOG_V(1, "unprepared ResourceClaim {} (uid {})", ClaimName(claim), claim.uid);
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
  if (Status st = ResetTimeSlices(uid, entry->devices); !st.ok()) {
    if (strict) return st;
    spdlog::error("ResourceClaim {}/{} (uid {}): {}; the claim is removed anyway", entry->ns,
                  entry->name, uid, st.message());
  }
  return checkpoint_->Update([&](checkpoint::State& s) { s.claims.erase(uid); })
      .WithContext("removing the claim from the checkpoint");
}

Expected<RecoveryReport> Preparer::Recover() {
  RecoveryReport report;
  Status first_error;
  int failures = 0;
  auto failed = [&](const Status& st) {
    spdlog::error("recovery: {}", st.message());
    if (failures++ == 0) first_error = st;
  };

  // With a shared checkpoint, an unfinished claim may be another live process's prepare or
  // unprepare in flight; only after a reboot is everything in the file surely abandoned.
  const bool exclusive = !options_.shared_checkpoint || checkpoint_->load_report().rebooted;
  if (!exclusive) {
    spdlog::info(
        "recovery: the checkpoint is shared with other plugin instances; leaving their "
        "unfinished claims to them and to kubelet's retries");
  }

  // 1. Undo prepares a crash interrupted.
  for (const auto& [uid, claim] : checkpoint_->Snapshot().claims) {
    if (claim.state == ClaimState::kPrepareCompleted || !exclusive) continue;
    spdlog::warn("rolling back ResourceClaim {}/{} (uid {}): its prepare was interrupted", claim.ns,
                 claim.name, uid);
    std::lock_guard<std::mutex> lock(ClaimMutex(uid));
    auto now = checkpoint_->Find(uid);
    if (!now || now->state != ClaimState::kPrepareStarted) continue;  // changed meanwhile
    Status st = UnprepareLocked(uid, /*strict=*/false);
    if (!st.ok()) {
      failed(st.WithContext("rolling back ResourceClaim " + claim.ns + "/" + claim.name));
      continue;
    }
    report.rolled_back++;
  }

  auto specs = cdi_->ListClaimSpecs();
  if (!specs.ok()) return specs.status();
  const std::set<std::string> have(specs->begin(), specs->end());

  // 2. Spec files that no checkpoint entry owns.
  for (const auto& uid : have) {
    std::lock_guard<std::mutex> lock(ClaimMutex(uid));
    if (checkpoint_->Find(uid)) continue;
    spdlog::warn("removing CDI spec of claim uid {}: no checkpoint entry owns it", uid);
    Status st = cdi_->RemoveClaimSpec(uid);
    if (!st.ok()) {
      failed(st);
      continue;
    }
    report.orphan_specs_removed++;
  }

  // 3. Device settings do not survive a reboot: apply those of prepared claims again.
  if (checkpoint_->load_report().rebooted && exclusive) {
    std::set<std::string> done;
    for (const auto& [uid, claim] : checkpoint_->Snapshot().claims) {
      if (claim.state != ClaimState::kPrepareCompleted) continue;
      for (const auto& d : claim.devices) {
        auto ts = AppliedTimeSliceOf(d);
        if (!ts || !done.insert(ts->target).second) continue;
        Status st = SetTimeSlice(ts->target, ts->setting);
        if (!st.ok()) {
          failed(st.WithContext("re-applying the time slice of ResourceClaim " + claim.ns + "/" +
                                claim.name + " after a reboot"));
        }
      }
    }
  }

  // 4. Prepared claims keep their spec; re-create it when it is gone (the CDI root is usually a
  //    tmpfs that a reboot empties; or a crash in Unprepare removed it, and kubelet will retry),
  //    and rewrite it when it differs from what the checkpoint renders (specs are written
  //    without fsync, so a power loss can leave an old or empty file).
  model::InventoryPtr inventory;
  for (const auto& [uid, claim] : checkpoint_->Snapshot().claims) {
    if (claim.state != ClaimState::kPrepareCompleted) continue;
    report.completed++;
    if (!exclusive) continue;
    if (!inventory) inventory = inventory_();
    const std::string who = "ResourceClaim " + claim.ns + "/" + claim.name + " (uid " + uid + ")";
    const bool present = have.count(uid) != 0;
    std::lock_guard<std::mutex> lock(ClaimMutex(uid));
    auto spec = BuildSpec(uid, claim.ns, claim.name, claim.devices, inventory.get());
    auto written = spec.ok() ? cdi_->SyncClaimSpec(uid, *spec) : Expected<bool>(spec.status());
    if (!written.ok()) {
      Status st = written.status().WithContext("re-creating the CDI spec of " + who);
      if (present) {  // the spec on disk still serves the running containers: keep it
        spdlog::warn("keeping the CDI spec of {} as it is: {}", who, st.message());
      } else {
        failed(st);
      }
      continue;
    }
    if (!*written) continue;
    spdlog::warn("re-created the CDI spec of prepared {}: it was {}", who,
                 present ? "different from the checkpoint's record" : "missing");
    report.specs_recreated++;
  }
  RETURN_IF_ERROR(checkpoint_->Sync().WithContext("checkpoint"));
  if (failures > 0) {
    return Status(
        first_error.code(),
        std::to_string(failures) + " recovery step(s) failed; the first: " + first_error.message());
  }
  return report;
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
