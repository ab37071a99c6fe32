// Steps and verdict helpers the checks share (see check.h and verdicts.h).

#include "checks/check.h"

#include <exception>
#include <set>
#include <sstream>

#include "accel_dra/probe/verdicts.h"

namespace accel_dra::probe {

bool Fail(CheckResult& c, const std::string& message) {
  c.status = CheckStatus::kFail;
  c.message = message;
  return false;
}

void RunGuarded(CheckResult& c, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    Fail(c, std::string("internal error in the probe (please report it): ") + e.what());
  } catch (...) {
    Fail(c, "internal error in the probe (please report it): an unknown exception");
  }
}

bool IsTransientPrepareFailure(std::string_view message) {
  return message.find("no relationship found between node") != std::string_view::npos;
}

std::string VisibleDevices(const InspectResult& out) {
  constexpr std::string_view kVar = "ACCEL_VISIBLE_DEVICES";
  std::set<std::string> seen;
  std::string merged;
  for (const auto& [key, value] : out.accel_env) {  // ordered by name
    if (key != kVar &&
        !(key.starts_with(kVar) && key.size() > kVar.size() && key[kVar.size()] == '_')) {
      continue;
    }
    std::stringstream items(value);
    for (std::string item; std::getline(items, item, ',');) {
      if (!item.empty() && seen.insert(item).second) merged += (merged.empty() ? "" : ",") + item;
    }
  }
  return merged;
}

std::vector<std::string> PerDeviceNodes(const std::vector<std::string>& nodes) {
  std::vector<std::string> out;
  for (const auto& n : nodes) {
    if (n == "/dev/nvidiactl" || n.starts_with("/dev/nvidia-") || n == "/dev/kfd" ||
        n.starts_with("/dev/dri/renderD")) {
      continue;
    }
    out.push_back(n);
  }
  return out;
}

bool RequireDraApi(const ClusterSession& session, CheckResult& c) {
  if (!session.dra_version().ok()) return Fail(c, session.dra_version().status().message());
  return true;
}

bool RequireDevices(ClusterSession& session, CheckResult& c) {
  auto inv = session.LoadInventory();
  if (!inv.ok()) return Fail(c, inv.status().message());
  if (inv->usable_by_node.empty()) {
    const std::string& driver = session.driver();
    return Fail(c, inv->pools.empty() ? "no ResourceSlices of driver " + driver +
                                            " are published (is the driver's kubelet plugin "
                                            "running?)"
                                      : "no complete ResourceSlice pool of driver " + driver +
                                            " on a Ready (selected) node");
  }
  return true;
}

std::vector<std::string> DeviceNames(const std::vector<std::string>& pool_devices) {
  std::vector<std::string> names;
  for (const auto& d : pool_devices) names.push_back(d.substr(d.find('/') + 1));
  return names;
}

}  // namespace accel_dra::probe
