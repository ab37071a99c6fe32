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
  unhealthy_ = std::move(unhealthy);
  if (options_.device_taints) changed_ = true;
  RecordDeviceCounts();
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
  if (!changed_) return false;
  changed_ = false;
  ++compositions_;
  model::InventoryPtr devices = inventory_;
  if (options_.device_taints) {
    devices = discovery::WithUnhealthyTaints(devices, unhealthy_, options_.driver_name);
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
