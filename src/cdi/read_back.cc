// What a claim spec the driver wrote says about its claim: the inverse of BuildClaimSpec
// (claim_spec.cc), for recovery when the checkpoint is lost.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/cdi/cdi.h"

namespace accel_dra::cdi {
namespace {

// The value of `key` among "KEY=VALUE" entries; nullopt when it is not set.
std::optional<std::string> EnvValue(const std::vector<std::string>& env, std::string_view key) {
  for (const auto& e : env) {
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=') {
      return e.substr(key.size() + 1);
    }
  }
  return std::nullopt;
}

// `key`'s value, InvalidArgument naming it when missing.
Expected<std::string> Required(const std::string& where, const std::vector<std::string>& env,
                               const std::string& key) {
  auto v = EnvValue(env, key);
  if (!v) return InvalidArgument(where + ": variable " + key + " is missing");
  return *v;
}

// `key`'s value read by `parse` (std::optional of the value); InvalidArgument naming the variable
// when it is missing or `parse` refuses it (the value is no `what`).
template <typename Parse>
auto ParsedVar(const std::string& where, const std::vector<std::string>& env,
               const std::string& key, Parse parse, std::string_view what)
    -> Expected<typename decltype(parse(std::string_view()))::value_type> {
  ASSIGN_OR_RETURN(std::string value, Required(where, env, key));
  auto parsed = parse(value);
  if (!parsed) {
    return InvalidArgument(where + ": " + key + "=" + value + " is no " + std::string(what));
  }
  return *parsed;
}

// The sharing settings a device's variables (prefix ACCEL_DEVICE_<ID>) announce.
Status ReadBackSharing(const std::string& where, const std::string& prefix,
                       const std::vector<std::string>& env, ClaimSpecContents::DeviceEntry& d) {
  ASSIGN_OR_RETURN(d.sharing.strategy, ParsedVar(where, env, prefix + "_SHARING_STRATEGY",
                                                 model::ParseSharingStrategy, "sharing strategy"));
  if (d.sharing.strategy == model::SharingStrategy::kTimeSlicing) {
    ASSIGN_OR_RETURN(d.sharing.interval,
                     ParsedVar(where, env, prefix + "_TIMESLICE_INTERVAL",
                               model::ParseTimeSliceInterval, "time-slice interval"));
    ASSIGN_OR_RETURN(std::string enforced, Required(where, env, prefix + "_TIMESLICE_ENFORCED"));
    if (enforced != "true" && enforced != "false") {
      return InvalidArgument(where + ": " + prefix + "_TIMESLICE_ENFORCED=" + enforced +
                             " is neither true nor false");
    }
    d.timeslice_enforced = enforced == "true";
  } else if (d.sharing.strategy == model::SharingStrategy::kSpacePartitioning) {
    ASSIGN_OR_RETURN(std::string count, Required(where, env, prefix + "_PARTITION_COUNT"));
    int n = 0;
    bool digits = !count.empty() && count.size() <= 2;
    for (char c : count) {
      digits = digits && c >= '0' && c <= '9';
      if (digits) n = n * 10 + (c - '0');
    }
    if (!digits || n < model::kMinPartitionCount || n > model::kMaxPartitionCount) {
      return InvalidArgument(where + ": " + prefix + "_PARTITION_COUNT=" + count +
                             " is not a partition count from " +
                             std::to_string(model::kMinPartitionCount) + " to " +
                             std::to_string(model::kMaxPartitionCount));
    }
    d.sharing.partition_count = n;
  }
  return Status::Ok();
}

// One CDI device of the claim's spec; sets *claim_ref to its "<namespace>/<name>".
Expected<ClaimSpecContents::DeviceEntry> ReadBackDevice(const std::string& where,
                                                        std::string_view claim_uid,
                                                        const Device& dev, std::string* claim_ref) {
  const std::string prefix_name = std::string(claim_uid) + "-";
  if (dev.name.size() <= prefix_name.size() ||
      dev.name.compare(0, prefix_name.size(), prefix_name) != 0) {
    return InvalidArgument(where + ": CDI device " + dev.name + " is not named " + prefix_name +
                           "<device>");
  }
  ClaimSpecContents::DeviceEntry d;
  d.device = dev.name.substr(prefix_name.size());
  const std::string at = where + ", device " + d.device;
  const std::string prefix = "ACCEL_DEVICE_" + EnvKeyForDevice(d.device);
  const auto& env = dev.container_edits.env;
  ASSIGN_OR_RETURN(std::string named, Required(at, env, prefix));
  if (named != d.device) {
    return InvalidArgument(at + ": " + prefix + "=" + named + " names another device");
  }
  ASSIGN_OR_RETURN(*claim_ref, Required(at, env, prefix + "_RESOURCE_CLAIM"));
  ASSIGN_OR_RETURN(std::string uid, Required(at, env, prefix + "_RESOURCE_CLAIM_UID"));
  if (uid != claim_uid) {
    return InvalidArgument(at + ": " + prefix + "_RESOURCE_CLAIM_UID=" + uid +
                           " is not the UID the file is named for");
  }
  RETURN_IF_ERROR(ReadBackSharing(at, prefix, env, d));
  for (const auto& n : dev.container_edits.device_nodes) {
    d.device_nodes.push_back(n.host_path.empty() ? n.path : n.host_path);
  }
  return d;
}

}  // namespace

Expected<ClaimSpecContents> ReadBackClaimSpec(std::string_view driver_name,
                                              std::string_view claim_uid, const Spec& spec) {
  RETURN_IF_ERROR(ValidateClaimUid(claim_uid));
  const std::string where = "CDI spec of claim uid " + std::string(claim_uid);
  if (spec.kind != KindForDriver(driver_name)) {
    return InvalidArgument(where + ": kind " + spec.kind + " is not " + KindForDriver(driver_name));
  }
  if (spec.devices.empty()) return InvalidArgument(where + ": no devices");
  ClaimSpecContents out;
  out.claim.uid = std::string(claim_uid);
  std::string first_ref;
  for (const auto& dev : spec.devices) {
    std::string ref;
    ASSIGN_OR_RETURN(auto d, ReadBackDevice(where, claim_uid, dev, &ref));
    if (first_ref.empty()) first_ref = ref;
    if (ref != first_ref) {
      return InvalidArgument(where + ": its devices name two claims (" + first_ref + " and " + ref +
                             ")");
    }
    out.devices.push_back(std::move(d));
  }
  const size_t slash = first_ref.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == first_ref.size()) {
    return InvalidArgument(where + ": _RESOURCE_CLAIM=" + first_ref + " is not <namespace>/<name>");
  }
  out.claim.namespace_ = first_ref.substr(0, slash);
  out.claim.name = first_ref.substr(slash + 1);
  for (const auto& m : spec.container_edits.mounts) {
    out.mounts.push_back({m.host_path, m.container_path});
  }
  return out;
}

Expected<Spec> CdiWriter::ReadClaimSpec(std::string_view claim_uid) {
  ASSIGN_OR_RETURN(std::filesystem::path path, ClaimSpecPath(claim_uid));
  auto data = env_->ReadFile(path);
  if (!data.ok()) {
    return Status(data.status().code(),
                  "cannot read CDI spec " + path.string() + ": " + data.status().message());
  }
  auto spec = ParseJson(*data);
  if (!spec.ok()) return spec.status().WithContext("CDI spec " + path.string());
  return spec;
}

}  // namespace accel_dra::cdi
