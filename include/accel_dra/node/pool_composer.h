#pragma once
// PoolComposer: the one place where the pool this node publishes is composed. Its inputs are
// the discovered inventory, the devices' health and the node-level attributes (container
// runtime, cdiEnabled, sharingMode; discovery/node_runtime.h). Its output is the Inventory handed
// to the sink (the SlicePublisher): every device with the node attributes added and, with device
// taints on, a taint on each unhealthy device (discovery/health.h).
//
// Promises:
//  - The latest inventory, health and node attributes always win: a composition uses the last
//    value set for each of them.
//  - It recomposes only when one of them changed since the last composition: the inventory by
//    content, the health by the unhealthy devices and their problems (and only with device taints
//    on: without taints health is not published), the node attributes by what would be
//    published (notes do not count). Without a change Publish() does nothing.
//  - A node attribute is added to a device only while the device stays within
//    max_attributes_and_capacities (32); a name left out on some device is warned about once
//    over the composer's life.
//  - A device that becomes healthy again keeps its published taint (the last problem's
//    reason) until it has stayed healthy for `taint_settle` (--device-taint-settle): a flapping
//    device is not offered to the scheduler between two failures. Unhealthy again within that
//    time restarts the wait. NextDeadline() tells the owner's loop when the next such taint is
//    due to go; Publish() at or after it recomposes without it.
//  - The devices by type and health go to Metrics() whenever the inventory or the health
//    changes (also without device taints).
//  - Not thread-safe: one thread owns it (the NodeAgent's loop thread), and the sink is called on
//    that thread, from Publish() only.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "accel_dra/discovery/health.h"
#include "accel_dra/discovery/node_runtime.h"
#include "accel_dra/model/device.h"
#include "accel_dra/slices/slices.h"

namespace accel_dra::node {

class PoolComposer {
 public:
  using Sink = std::function<void(model::InventoryPtr)>;
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::string driver_name;                  // the domain of the taint key (<driver>/unhealthy)
    bool device_taints = true;                // --device-taints
    std::string taint_effect = "NoSchedule";  // --device-taint-effect
    // --device-taint-settle: how long a device must stay healthy before its taint goes.
    std::chrono::milliseconds taint_settle{std::chrono::seconds(30)};
    size_t max_attributes_and_capacities = slices::kMaxAttributesAndCapacities;
    std::function<Clock::time_point()> now{};  // empty: Clock::now (tests pass a fake clock)
  };

  // Starts with an empty inventory, no unhealthy device and the driver-only node attributes.
  PoolComposer(Options options, Sink sink);

  void SetInventory(model::InventoryPtr inventory);
  void SetUnhealthy(std::map<std::string, discovery::HealthProblem> unhealthy);
  void SetNodeAttributes(discovery::NodeAttributes attributes);

  // Composes and hands the result to the sink when an input changed since the last composition
  // or a recovered device's settle time ended (the first call always composes). True when it did.
  bool Publish();
  // When the next recovered device's taint is due to go; nullopt when none is waiting.
  std::optional<Clock::time_point> NextDeadline() const;
  // How many times it composed.
  uint64_t compositions() const { return compositions_; }

 private:
  void RecordDeviceCounts() const;
  Clock::time_point Now() const { return options_.now ? options_.now() : Clock::now(); }
  // Drops the recovering devices whose settle time has ended (then the pool changed).
  void ExpireSettled();

  Options options_;
  Sink sink_;
  model::InventoryPtr inventory_;
  std::map<std::string, discovery::HealthProblem> unhealthy_;
  // Healthy again but still tainted: the last problem and when the device became healthy.
  struct Recovering {
    discovery::HealthProblem problem;
    Clock::time_point since;
  };
  std::map<std::string, Recovering> recovering_;
  std::set<std::string> published_tainted_;  // the devices tainted in the last composition
  discovery::NodeAttributes node_attributes_;
  bool changed_ = true;
  uint64_t compositions_ = 0;
  std::set<std::string> left_out_warned_;
};

}  // namespace accel_dra::node
