#include "accel_dra/discovery/manager.h"

#include "accel_dra/common/log.h"

namespace accel_dra::discovery {

void DeviceManager::AddBackend(std::unique_ptr<Backend> backend) {
  backends_.push_back(Source{std::move(backend), "", false, {}});
}

bool DeviceManager::MaybeChanged() {
  bool changed = false;
  for (auto& s : backends_) changed = s.backend->MaybeChanged() || changed;
  return changed;
}

const std::vector<model::Device>& DeviceManager::Scan(Source& s) {
  auto found = s.backend->Discover();
  if (found.ok()) {
    if (!s.error.empty()) {
      spdlog::info("device discovery ({}) works again; its {} devices are current",
                   s.backend->Name(), found->size());
    }
    s.error.clear();
    s.ever_ok = true;
    s.last_good = std::move(found).value();
    return s.last_good;
  }
  if (found.status().message() != s.error) {
    s.error = found.status().message();
    if (s.ever_ok) {
      spdlog::error(
          "device discovery ({}) failed: {}; keeping its {} devices from the last successful scan "
          "(health Unknown) until a scan succeeds",
          s.backend->Name(), s.error, s.last_good.size());
    } else {
      spdlog::error(
          "device discovery ({}) failed: {}; it contributes no devices until a scan "
          "succeeds",
          s.backend->Name(), s.error);
    }
  }
  return s.last_good;  // empty when it never succeeded
}

model::InventoryPtr DeviceManager::Refresh() {
  std::vector<model::Device> all;
  std::set<std::string> names;
  std::set<std::string> stale;
  for (auto& s : backends_) {
    const std::vector<model::Device>& devices = Scan(s);
    for (const auto& d : devices) {
      if (!names.insert(d.name).second) {
        spdlog::warn("device {} from {} has the same name as another device; not published", d.name,
                     s.backend->Name());
        continue;
      }
      if (!s.error.empty()) stale.insert(d.name);
      all.push_back(d);
    }
  }
  stale_ = std::move(stale);
  auto next = std::make_shared<const model::Inventory>(std::move(all));
  if (!(*next == *current_)) current_ = std::move(next);
  return current_;
}

}  // namespace accel_dra::discovery
