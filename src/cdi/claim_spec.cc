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

}  // namespace

Expected<Spec> BuildClaimSpec(std::string_view driver_name, const ClaimInfo& claim,
                              const std::vector<PreparedDevice>& devices) {
  RETURN_IF_ERROR(ValidateClaimUid(claim.uid));
  std::string where = "claim " + claim.namespace_ + "/" + claim.name + " (" + claim.uid + ")";
  if (devices.empty()) return InvalidArgument(where + ": no devices to put in the CDI spec");

  std::vector<const PreparedDevice*> ordered;
  ordered.reserve(devices.size());
  for (const auto& d : devices) ordered.push_back(&d);
  std::sort(ordered.begin(), ordered.end(), [](const PreparedDevice* a, const PreparedDevice* b) {
    if (a->index != b->index) return a->index < b->index;
    if (a->pool != b->pool) return a->pool < b->pool;
    return a->device_name < b->device_name;
  });

  Spec spec;
  spec.kind = KindForDriver(driver_name);
  std::set<std::string, std::less<>> keys;  // device env keys in use, to detect collisions
  std::string visible;
  for (const PreparedDevice* d : ordered) {
    ASSIGN_OR_RETURN(std::string cdi_name, ClaimDeviceName(claim.uid, d->device_name));
    std::string key = EnvKeyForDevice(d->device_name);
    if (!keys.insert(key).second) {
      return InvalidArgument(where + ": device " + d->device_name + " (pool " + d->pool +
                             ") would share the variable prefix ACCEL_DEVICE_" + key +
                             " with another device of the claim; device names must be unique "
                             "among the driver's devices on a node");
    }
    std::string prefix = "ACCEL_DEVICE_" + key;

    Device dev;
    dev.name = std::move(cdi_name);
    auto& env = dev.container_edits.env;
    env.push_back(prefix + "=" + d->device_name);
    env.push_back(prefix + "_RESOURCE_CLAIM=" + claim.namespace_ + "/" + claim.name);
    env.push_back(prefix + "_RESOURCE_CLAIM_UID=" + claim.uid);
    std::string strategy = d->sharing_strategy.empty() ? "Exclusive" : d->sharing_strategy;
    env.push_back(prefix + "_SHARING_STRATEGY=" + strategy);
    if (strategy == "TimeSlicing") {
      std::string interval = d->timeslice_interval.empty() ? "Default" : d->timeslice_interval;
      env.push_back(prefix + "_TIMESLICE_INTERVAL=" + interval);
    } else if (strategy == "SpacePartitioning") {
      if (d->partition_count.empty()) {
        return InvalidArgument(where + ": device " + d->device_name +
                               " uses SpacePartitioning but has no partition count");
      }
      env.push_back(prefix + "_PARTITION_COUNT=" + d->partition_count);
    } else if (strategy != "Exclusive") {
      return InvalidArgument(where + ": device " + d->device_name +
                             " has unknown sharing strategy " + strategy +
                             " (accepted: Exclusive, TimeSlicing, SpacePartitioning)");
    }
    std::set<std::string, std::less<>> device_keys;
    for (const auto& e : env) device_keys.insert(e.substr(0, e.find('=')));
    for (const auto& [k, v] : d->extra_env) {
      if (!IsEnvName(k)) {
        return InvalidArgument(where + ": device " + d->device_name + ": extra variable name \"" +
                               k + "\" is not a valid name ([A-Za-z_][A-Za-z0-9_]*)");
      }
      if (k == "ACCEL_VISIBLE_DEVICES" || !device_keys.insert(k).second) {
        return InvalidArgument(where + ": device " + d->device_name + ": extra variable " + k +
                               " is set twice");
      }
      env.push_back(k + "=" + v);
    }
    for (const auto& path : d->device_node_paths) {
      DeviceNode node;
      node.path = path;
      dev.container_edits.device_nodes.push_back(std::move(node));
    }
    if (!visible.empty()) visible += ",";
    visible += d->device_name;
    spec.devices.push_back(std::move(dev));
  }
  spec.container_edits.env.push_back("ACCEL_VISIBLE_DEVICES=" + visible);

  Status st = Validate(spec);
  if (!st.ok()) return st.WithContext(where);
  return spec;
}

}  // namespace accel_dra::cdi
