#include "accel_dra/discovery/health.h"

#include <algorithm>

#include "accel_dra/common/log.h"

namespace accel_dra::discovery {
namespace {
std::string StringAttr(const model::Device& d, const std::string& name) {
  auto it = d.attributes.find(name);
  if (it == d.attributes.end() || it->second.type() != model::AttrValue::Type::kString) return "";
  return it->second.string_value();
}
}  // namespace

DeviceHealthTracker::DeviceHealthTracker(Env* env, HostRoot root, std::string pool)
    : env_(env), root_(std::move(root)), pool_(std::move(pool)) {}

model::DeviceTaint UnhealthyTaint(const std::string& driver_name, const HealthProblem& problem,
                                  const std::string& effect) {
  return model::DeviceTaint{driver_name + "/unhealthy", problem.reason, effect};
}

model::InventoryPtr WithUnhealthyTaints(const model::InventoryPtr& inventory,
                                        const std::map<std::string, HealthProblem>& unhealthy,
                                        const std::string& driver_name, const std::string& effect) {
  if (unhealthy.empty()) return inventory;
  std::vector<model::Device> devices = inventory->devices();
  for (auto& d : devices) {
    auto it = unhealthy.find(d.name);
    if (it != unhealthy.end()) d.taints.push_back(UnhealthyTaint(driver_name, it->second, effect));
  }
  return std::make_shared<const model::Inventory>(std::move(devices));
}

HealthProblem DeviceHealthTracker::Check(const model::Device& d, const std::string& key,
                                         const NvmlInfo* nvml) {
  Memory& m = memory_[key];
  // Only nodes that exist are remembered: a node the device never had (e.g. a simulated device
  // whose profile names a path nobody created) says nothing about its health.
  for (const auto& n : d.device_nodes) {
    if (m.nodes.count(n) == 0 && env_->Exists(root_.Path(n))) m.nodes.insert(n);
  }
  for (const auto& n : m.nodes) {
    if (!env_->Exists(root_.Path(n))) {
      return {"DeviceNodeMissing", "device node " + n + " is missing"};
    }
  }
  std::string bdf = StringAttr(d, "pciBusID");
  std::string driver = StringAttr(d, "driverName");
  if (!bdf.empty()) {
    bool bound = env_->ReadLink(root_.Path("/sys/bus/pci/devices/" + bdf + "/driver")).ok();
    if (bound && !driver.empty()) m.driver = driver;
    if (!bound && !m.driver.empty())
      return {"DriverUnbound", "PCI driver " + m.driver + " unbound"};
  }
  if (nvml != nullptr && StringAttr(d, "vendor") == "nvidia" && driver == "nvidia" &&
      !bdf.empty()) {
    bool listed = std::any_of(nvml->gpus.begin(), nvml->gpus.end(),
                              [&](const NvmlGpu& g) { return g.bus_id == bdf; });
    if (!listed) {
      std::string why = nvml->warnings.empty() ? "not listed" : nvml->warnings.front();
      return {"NvmlError", "NVML cannot use this GPU (" + why + ")"};
    }
  }
  return {};
}

void DeviceHealthTracker::Update(const model::Inventory& inventory, const HealthContext& context) {
  std::set<std::string> names;
  std::map<std::string, HealthProblem> unhealthy = context.held;
  std::set<std::string> unknown;
  std::set<std::string> keys;
  for (const auto& d : inventory.devices()) {
    std::string key = StringAttr(d, "pciBusID");
    if (key.empty()) key = "name:" + d.name;
    keys.insert(key);
    names.insert(d.name);
    if (context.stale.count(d.name) != 0) {
      // What discovery cannot read now, the checks cannot judge either (an unlistable
      // /sys/bus/pci/devices would read as unbound drivers).
      if (unhealthy.count(d.name) == 0) unknown.insert(d.name);
      continue;
    }
    HealthProblem p = Check(d, key, context.nvml);
    if (!p.reason.empty()) unhealthy.emplace(d.name, std::move(p));  // a held device's first
  }
  for (const auto& [name, problem] : context.held) names.insert(name);
  for (auto it = memory_.begin(); it != memory_.end();) {
    it = keys.count(it->first) != 0 ? std::next(it) : memory_.erase(it);
  }
  std::vector<std::string> sorted(names.begin(), names.end());
  std::lock_guard<std::mutex> lock(mu_);
  if (sorted == names_ && unhealthy == unhealthy_ && unknown == unknown_ && generation_ != 0) {
    return;
  }
  for (const auto& [name, problem] : unhealthy) {
    auto old = unhealthy_.find(name);
    if (old == unhealthy_.end() || old->second != problem) {
      spdlog::warn("device {} is unhealthy: {}", name, problem.message);
    }
  }
  for (const auto& [name, problem] : unhealthy_) {
    if (unhealthy.count(name) == 0 && unknown.count(name) == 0 && names.count(name) != 0) {
      spdlog::info("device {} is healthy again", name);
    }
  }
  names_ = std::move(sorted);
  unhealthy_ = std::move(unhealthy);
  unknown_ = std::move(unknown);
  ++generation_;
}

model::DeviceHealthSnapshot DeviceHealthTracker::Snapshot() {
  std::lock_guard<std::mutex> lock(mu_);
  model::DeviceHealthSnapshot s;
  s.generation = generation_;
  for (const auto& n : names_) {
    model::DeviceHealth h;
    h.pool = pool_;
    h.device = n;
    auto bad = unhealthy_.find(n);
    if (bad != unhealthy_.end()) {
      h.health = model::DeviceHealthStatus::kUnhealthy;
      h.message = bad->second.message;
    } else if (unknown_.count(n) != 0) {
      h.health = model::DeviceHealthStatus::kUnknown;
      h.message = "device state cannot be read now (discovery failing)";
    } else {
      h.health = model::DeviceHealthStatus::kHealthy;
      h.message = "all health checks pass";
    }
    s.devices.push_back(std::move(h));
  }
  return s;
}

std::map<std::string, HealthProblem> DeviceHealthTracker::Unhealthy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unhealthy_;
}

uint64_t DeviceHealthTracker::generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

}  // namespace accel_dra::discovery
