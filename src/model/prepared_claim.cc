#include "accel_dra/model/prepared_claim.h"

namespace accel_dra::model {

std::string_view ClaimStateName(ClaimState state) {
  switch (state) {
    case ClaimState::kPrepareStarted:
      return "PrepareStarted";
    case ClaimState::kPrepareCompleted:
      return "PrepareCompleted";
  }
  return "Unknown";
}

std::vector<HeldDevice> HeldDevicesOf(
    const std::map<std::string, PreparedClaim, std::less<>>& claims) {
  std::vector<HeldDevice> out;
  for (const auto& [uid, claim] : claims) {
    if (claim.state != ClaimState::kPrepareCompleted) continue;
    for (const auto& d : claim.devices) out.push_back({claim.ns + "/" + claim.name, uid, d});
  }
  return out;
}

HeldDeviceCheck CheckHeldDevice(const PreparedDevice& held, const Inventory& inventory) {
  static const std::vector<std::string> kNone;
  const std::vector<std::string>& nodes = held.device_nodes ? *held.device_nodes : kNone;
  HeldDeviceCheck out;
  if (const Device* d = inventory.Find(held.device)) {
    std::string change = IdentityChange(held.identity, d->identity);
    if (change.empty()) {
      out.current_name = d->name;
      return out;
    }
    out.state = HeldDeviceState::kChanged;
    out.message = "device " + held.device + " is another physical device now (" + change + ")";
    return out;
  }
  for (const auto& d : inventory.devices()) {
    if (!IdentityChange(held.identity, d.identity).empty()) continue;
    std::string same = PhysicalOverlap(held.identity, nodes, d.identity, d.device_nodes,
                                       inventory.shared_device_nodes());
    if (same.empty()) continue;
    out.state = HeldDeviceState::kRenamed;
    out.current_name = d.name;
    out.message = "device " + held.device + " is published as " + d.name + " now (" + same + ")";
    return out;
  }
  out.state = HeldDeviceState::kVanished;
  std::string known =
      held.identity.pci_bus_id.empty() ? "" : " (PCI bus ID " + held.identity.pci_bus_id + ")";
  out.message = "device " + held.device + known + " is gone from this node";
  return out;
}

}  // namespace accel_dra::model
