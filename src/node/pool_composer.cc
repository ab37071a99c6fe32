#include "accel_dra/node/pool_composer.h"

#include <utility>
#include <vector>

#include "accel_dra/common/log.h"
#include "accel_dra/common/metrics.h"

namespace accel_dra::node {

PoolComposer::PoolComposer(Options options, Sink sink)
    : options_(std::move(options)),
      sink_(std::move(sink)),
      inventory_(std::make_shared<const model::Inventory>()),
      node_attributes_(discovery::DriverOnlyAttributes()) {}

void PoolComposer::SetInventory(model::InventoryPtr inventory) {
  if (!inventory) inventory = std::make_shared<const model::Inventory>();
  if (inventory == inventory_ || *inventory == *inventory_) return;
  inventory_ = std::move(inventory);
  changed_ = true;
  RecordDeviceCounts();
}

void PoolComposer::SetUnhealthy(std::map<std::string, discovery::HealthProblem> unhealthy) {
  if (unhealthy == unhealthy_) return;
  if (options_.device_taints && options_.taint_settle.count() > 0) {
    auto now = Now();
    for (const auto& [name, problem] : unhealthy_) {
      // Only a taint that was published is kept: a device never published as tainted is free.
      if (unhealthy.count(name) == 0 && published_tainted_.count(name) != 0) {
        recovering_[name] = Recovering{problem, now};
      }
    }
  }
  for (const auto& [name, problem] : unhealthy) recovering_.erase(name);
  unhealthy_ = std::move(unhealthy);
  if (options_.device_taints) changed_ = true;
  RecordDeviceCounts();
}

std::optional<PoolComposer::Clock::time_point> PoolComposer::NextDeadline() const {
  std::optional<Clock::time_point> next;
  for (const auto& [name, r] : recovering_) {
    auto due = r.since + options_.taint_settle;
    if (!next || due < *next) next = due;
  }
  return next;
}

void PoolComposer::ExpireSettled() {
  auto now = Now();
  for (auto it = recovering_.begin(); it != recovering_.end();) {
    if (now - it->second.since >= options_.taint_settle) {
      spdlog::info("device {} stayed healthy for {} ms: its taint {}/unhealthy={} goes", it->first,
                   options_.taint_settle.count(), options_.driver_name, it->second.problem.reason);
      it = recovering_.erase(it);
      changed_ = true;
    } else {
      ++it;
    }
  }
}

void PoolComposer::RecordDeviceCounts() const {
  DeviceCounts counts;
  for (const auto& d : inventory_->devices()) {
    auto type = d.attributes.find("type");
    std::string t = type != d.attributes.end() && !type->second.string_value().empty()
                        ? type->second.string_value()
                        : "unknown";
    auto problem = unhealthy_.find(d.name);
    counts[{t, problem == unhealthy_.end() ? "Healthy" : problem->second.reason}]++;
  }
  Metrics().DevicesPublished(counts);
}

void PoolComposer::SetNodeAttributes(discovery::NodeAttributes attributes) {
  if (attributes.attributes == node_attributes_.attributes) return;
  node_attributes_ = std::move(attributes);
  changed_ = true;
}

bool PoolComposer::Publish() {
  ExpireSettled();
  if (!changed_) return false;
  changed_ = false;
  ++compositions_;
  model::InventoryPtr devices = inventory_;
  if (options_.device_taints) {
    auto tainted = unhealthy_;
    for (const auto& [name, r] : recovering_) tainted.emplace(name, r.problem);
    published_tainted_.clear();
    for (const auto& [name, problem] : tainted) published_tainted_.insert(name);
    devices = discovery::WithUnhealthyTaints(devices, tainted, options_.driver_name,
                                             options_.taint_effect);
  }
  std::vector<std::string> left_out;
  auto composed = std::make_shared<const model::Inventory>(discovery::WithNodeAttributes(
      *devices, node_attributes_, options_.max_attributes_and_capacities, &left_out));
  for (const auto& name : left_out) {
    if (left_out_warned_.insert(name).second) {
      spdlog::warn(
          "attribute {} left out of some devices: they already have {} attributes and capacities",
          name, options_.max_attributes_and_capacities);
    }
  }
  if (sink_) sink_(std::move(composed));
  return true;
}

}  // namespace accel_dra::node
