// What the driver puts into a claim's CDI spec.

#include <algorithm>
#include <set>
#include <string>

#include "accel_dra/cdi/cdi.h"

namespace accel_dra::cdi {
namespace {

bool IsEnvName(std::string_view key) {
  if (key.empty()) return false;
  for (size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (!(letter || (digit && i > 0))) return false;
  }
  return true;
}

DeviceNode NodeFor(const std::string& host_path) {
  DeviceNode node;
  node.path = ContainerDevicePath(host_path);
  if (node.path != host_path) node.host_path = host_path;
  return node;
}

// The claim's devices in (index, pool, name) order.
std::vector<const ClaimSpecDevice*> Ordered(const std::vector<ClaimSpecDevice>& devices) {
  std::vector<const ClaimSpecDevice*> ordered;
  ordered.reserve(devices.size());
  for (const auto& d : devices) ordered.push_back(&d);
  std::sort(ordered.begin(), ordered.end(), [](const ClaimSpecDevice* a, const ClaimSpecDevice* b) {
    if (a->index != b->index) return a->index < b->index;
    if (a->device.pool != b->device.pool) return a->device.pool < b->device.pool;
    return a->device.device < b->device.device;
  });
  return ordered;
}

// The sharing variables of device `d` (variable prefix `prefix`).
Status AddSharingEnv(const std::string& where, const std::string& prefix,
                     const model::PreparedDevice& d, std::vector<std::string>& env) {
  const model::SharingSettings& s = d.sharing;
  env.push_back(prefix + "_SHARING_STRATEGY=" + s.StrategyName());
  switch (s.strategy) {
    case model::SharingStrategy::kExclusive:
      break;
    case model::SharingStrategy::kTimeSlicing:
      env.push_back(prefix +
                    "_TIMESLICE_INTERVAL=" + std::string(model::TimeSliceIntervalName(s.interval)));
      env.push_back(prefix + "_TIMESLICE_ENFORCED=" + (d.TimeSliceEnforced() ? "true" : "false"));
      break;
    case model::SharingStrategy::kSpacePartitioning:
      if (s.partition_count <= 0) {
        return InvalidArgument(where + ": device " + d.device +
                               " uses SpacePartitioning but has no partition count");
      }
      env.push_back(prefix + "_PARTITION_COUNT=" + std::to_string(s.partition_count));
      break;
  }
  return Status::Ok();
}

// The device's extra variables after the standard ones: valid names, none set twice.
Status AddExtraEnv(const std::string& where, const ClaimSpecDevice& d,
                   std::vector<std::string>& env) {
  std::set<std::string, std::less<>> device_keys;
  for (const auto& e : env) device_keys.insert(e.substr(0, e.find('=')));
  for (const auto& [k, v] : d.extra_env) {
    if (!IsEnvName(k)) {
      return InvalidArgument(where + ": device " + d.device.device + ": extra variable name \"" +
                             k + "\" is not a valid name ([A-Za-z_][A-Za-z0-9_]*)");
    }
    if (k.starts_with(kVisibleDevicesPrefix)) {
      return InvalidArgument(where + ": device " + d.device.device + ": extra variable " + k +
                             " would collide with the claims' " +
                             std::string(kVisibleDevicesPrefix) + "_* variables");
    }
    if (!device_keys.insert(k).second) {
      return InvalidArgument(where + ": device " + d.device.device + ": extra variable " + k +
                             " is set twice");
    }
    env.push_back(k + "=" + v);
  }
  return Status::Ok();
}

// The CDI device `cdi_name` of `d`: its variables (prefix ACCEL_DEVICE_<key>) and device nodes.
Expected<Device> BuildDevice(const ClaimInfo& claim, const std::string& where, std::string cdi_name,
                             const std::string& key, const ClaimSpecDevice& d) {
  const model::PreparedDevice& rec = d.device;
  const std::string prefix = "ACCEL_DEVICE_" + key;
  Device dev;
  dev.name = std::move(cdi_name);
  auto& env = dev.container_edits.env;
  env.push_back(prefix + "=" + rec.device);
  env.push_back(prefix + "_RESOURCE_CLAIM=" + claim.namespace_ + "/" + claim.name);
  env.push_back(prefix + "_RESOURCE_CLAIM_UID=" + claim.uid);
  RETURN_IF_ERROR(AddSharingEnv(where, prefix, rec, env));
  RETURN_IF_ERROR(AddExtraEnv(where, d, env));
  if (rec.device_nodes) {
    for (const auto& path : *rec.device_nodes) {
      dev.container_edits.device_nodes.push_back(NodeFor(path));
    }
  }
  return dev;
}

// The spec-level read-only mounts: sorted by container path, one per container path, absolute.
Status AddMounts(const std::string& where, const std::set<ReadOnlyMount>& mounts, Spec& spec) {
  // Sorted by container path (the set orders by host path, then container path).
  std::vector<ReadOnlyMount> sorted(mounts.begin(), mounts.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.container_path < b.container_path;
  });
  for (size_t i = 0; i < sorted.size(); ++i) {
    const ReadOnlyMount& m = sorted[i];
    if (i > 0 && sorted[i - 1].container_path == m.container_path) {
      return InvalidArgument(where + ": two files would be mounted at " + m.container_path + " (" +
                             sorted[i - 1].host_path + " and " + m.host_path + ")");
    }
    if (m.host_path.empty() || m.host_path.front() != '/' || m.container_path.empty() ||
        m.container_path.front() != '/') {
      return InvalidArgument(where + ": mount " + m.host_path + " -> " + m.container_path +
                             ": both paths must be absolute");
    }
    spec.container_edits.mounts.push_back(ToCdiMount(m));
  }
  return Status::Ok();
}

}  // namespace

Mount ToCdiMount(const ReadOnlyMount& m) {
  Mount out;
  out.host_path = m.host_path;
  out.container_path = m.container_path;
  out.type = "bind";
  for (auto o : kReadOnlyBindOptions) out.options.emplace_back(o);
  return out;
}

std::string ContainerDevicePath(std::string_view host_path) {
  constexpr std::string_view kDev = "/dev/";
  auto pos = host_path.rfind(kDev);
  if (pos == std::string_view::npos) return std::string(host_path);
  return std::string(kDev) + std::string(host_path.substr(pos + kDev.size()));
}

Expected<Spec> BuildClaimSpec(std::string_view driver_name, const ClaimInfo& claim,
                              const std::vector<ClaimSpecDevice>& devices,
                              const ClaimSpecExtras& extras) {
  RETURN_IF_ERROR(ValidateClaimUid(claim.uid));
  std::string where = "claim " + claim.namespace_ + "/" + claim.name + " (" + claim.uid + ")";
  if (devices.empty()) return InvalidArgument(where + ": no devices to put in the CDI spec");

  Spec spec;
  spec.kind = KindForDriver(driver_name);
  std::set<std::string, std::less<>> keys;  // device env keys in use, to detect collisions
  std::string visible;
  std::set<ReadOnlyMount> mounts(extras.read_only_mounts.begin(), extras.read_only_mounts.end());
  for (const ClaimSpecDevice* d : Ordered(devices)) {
    const model::PreparedDevice& rec = d->device;
    if (rec.mounts) mounts.insert(rec.mounts->begin(), rec.mounts->end());
    ASSIGN_OR_RETURN(std::string cdi_name, ClaimDeviceName(claim.uid, rec.device));
    std::string key = EnvKeyForDevice(rec.device);
    if (!keys.insert(key).second) {
      return InvalidArgument(where + ": device " + rec.device + " (pool " + rec.pool +
                             ") would share the variable prefix ACCEL_DEVICE_" + key +
                             " with another device of the claim; device names must be unique "
                             "among the driver's devices on a node");
    }
    ASSIGN_OR_RETURN(Device dev, BuildDevice(claim, where, std::move(cdi_name), key, *d));
    spec.devices.push_back(std::move(dev));
    visible += (visible.empty() ? "" : ",") + rec.device;
  }
  for (const auto& name : extras.unclaimed_device_names) {
    visible += (visible.empty() ? "" : ",") + name;
  }
  spec.container_edits.env.push_back(VisibleDevicesVariable(claim.uid) + "=" + visible);
  for (const auto& path : extras.unclaimed_device_node_paths) {
    spec.container_edits.device_nodes.push_back(NodeFor(path));
  }
  RETURN_IF_ERROR(AddMounts(where, mounts, spec));
  Status st = Validate(spec);
  if (!st.ok()) return st.WithContext(where);
  return spec;
}

}  // namespace accel_dra::cdi
