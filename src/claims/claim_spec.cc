// A claim's CDI spec, rendered from its prepared-device records (at prepare and at recovery).

#include <set>
#include <utility>

#include "preparer_internal.h"

namespace accel_dra::claims {

Expected<std::vector<cdi::ClaimSpecDevice>> SpecDevicesFor(
    const std::vector<model::PreparedDevice>& devices, const model::Inventory* inventory) {
  std::vector<cdi::ClaimSpecDevice> out;
  std::map<std::pair<std::string, std::string>, size_t> seen;
  for (const auto& d : devices) {
    auto [it, inserted] = seen.emplace(std::make_pair(d.pool, d.device), out.size());
    if (!inserted) {
      if (out[it->second].device.sharing != d.sharing) {
        return InvalidArgument("device " + d.device +
                               " is allocated to two requests of the claim with different "
                               "sharing settings; give both requests the same DeviceConfig");
      }
      continue;
    }
    cdi::ClaimSpecDevice sd;
    sd.device = d;
    sd.index = static_cast<int>(out.size());
    // Recorded before device nodes and mounts were: what the device has now.
    const model::Device* dev = inventory != nullptr ? inventory->Find(d.device) : nullptr;
    if (!sd.device.device_nodes && dev != nullptr) sd.device.device_nodes = dev->device_nodes;
    if (!sd.device.mounts && dev != nullptr) sd.device.mounts = dev->read_only_mounts;
    out.push_back(std::move(sd));
  }
  return out;
}

Expected<cdi::Spec> Preparer::BuildSpec(const std::string& uid, const std::string& ns,
                                        const std::string& name,
                                        const std::vector<model::PreparedDevice>& devices,
                                        const model::Inventory* inventory) const {
  ASSIGN_OR_RETURN(auto spec_devices, SpecDevicesFor(devices, inventory));
  cdi::ClaimSpecExtras extras;
  if (!options_.inspect_tool.empty()) {
    extras.read_only_mounts.push_back(
        {options_.inspect_tool, std::string(model::kInspectToolContainerPath)});
  }
  if (!options_.smi_tool.empty()) {
    extras.read_only_mounts.push_back(
        {options_.smi_tool, std::string(model::kSmiToolContainerPath)});
  }
  if (options_.testing_expose_all_devices && inventory != nullptr) {
    std::set<std::string> held;
    std::set<std::string> nodes;
    for (const auto& d : spec_devices) {
      held.insert(d.device.device);
      if (d.device.device_nodes)
        nodes.insert(d.device.device_nodes->begin(), d.device.device_nodes->end());
    }
    for (const auto& d : inventory->devices()) {
      if (held.count(d.name) != 0) continue;
      extras.unclaimed_device_names.push_back(d.name);
      for (const auto& n : d.device_nodes) {
        if (nodes.insert(n).second) extras.unclaimed_device_node_paths.push_back(n);
      }
    }
  }
  auto spec = cdi::BuildClaimSpec(options_.driver_name, {uid, ns, name}, spec_devices, extras);
  if (!spec.ok()) return spec.status().WithContext("building the CDI spec");
  return spec;
}

}  // namespace accel_dra::claims
