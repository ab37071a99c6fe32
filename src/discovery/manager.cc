#include "accel_dra/discovery/manager.h"

#include <set>

#include "accel_dra/common/log.h"

namespace accel_dra::discovery {

void DeviceManager::AddBackend(std::unique_ptr<Backend> backend) {
  backends_.push_back(std::move(backend));
  last_errors_.emplace_back();
}

bool DeviceManager::MaybeChanged() {
  bool changed = false;
  for (auto& b : backends_) changed = b->MaybeChanged() || changed;
  return changed;
}

model::InventoryPtr DeviceManager::Refresh() {
  std::vector<model::Device> all;
  std::set<std::string> names;
  for (size_t i = 0; i < backends_.size(); ++i) {
    auto found = backends_[i]->Discover();
    if (!found.ok()) {
      if (found.status().message() != last_errors_[i]) {
        spdlog::error("device discovery ({}) failed: {}", backends_[i]->Name(),
                      found.status().message());
        last_errors_[i] = found.status().message();
      }
      continue;
    }
    last_errors_[i].clear();
    for (auto& d : *found) {
      if (!names.insert(d.name).second) {
        spdlog::warn("device {} from {} has the same name as another device; not published", d.name,
                     backends_[i]->Name());
        continue;
      }
      all.push_back(std::move(d));
    }
  }
  auto next = std::make_shared<const model::Inventory>(std::move(all));
  if (!(*next == *current_)) current_ = std::move(next);
  return current_;
}

}  // namespace accel_dra::discovery
