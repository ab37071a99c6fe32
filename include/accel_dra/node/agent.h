#pragma once
// NodeAgent: the daemon's run loop on the node's side. One thread (the one that calls Create,
// Publish and Run: the daemon's main thread) discovers devices, checks their health, composes
// the pool (PoolComposer) and hands it to the publisher; other threads only read inventory(),
// call Stop(), or wake the loop through the node-attribute source's fd.
//
// Promises:
//  - Create() discovers once and checks health, so inventory() holds the node's devices before
//    anything is served; it publishes nothing.
//  - Run() polls the shutdown signals (SIGINT, SIGTERM: a signalfd, so the caller must have
//    blocked them in every thread before starting any), Stop(), the device events and the
//    node-attribute source, and
//      * rescans (DeviceManager::Refresh) after a burst of device events has settled, when a
//        backend may have changed (checked every check_every), and every rescan_every;
//      * re-checks device health on every rescan and every check_every;
//      * reads the node attributes whenever the source's fd is readable;
//      * recomposes and publishes only when the inventory, health or node attributes changed
//        (PoolComposer), so the sink is called on this thread only; it also wakes when a
//        recovered device's taint settle time ends (PoolComposer::NextDeadline);
//      * calls the stale-claim sweep every sweep_every;
//      * with a held-devices source (SetHeldDevices), checks on every health re-check the devices
//        prepared claims hold against the inventory (model::CheckHeldDevice): one that vanished
//        or is another physical device now is logged (a warning naming claim and device, once
//        per change) and reported Unhealthy to the health tracker (DeviceVanished,
//        DeviceChanged) under the name the claim holds; a device held under a former name
//        (e.g. prepared before an upgrade renamed devices) is logged once at info level.
//      * Devices a failing discovery backend kept from its last good scan are reported to the
//        health tracker as stale (Unknown).
//    It returns after SIGINT or SIGTERM (logged: "received SIGTERM, shutting down") or Stop(),
//    leaving the components it was given running: their shutdown is the caller's.
//  - It depends on no claims code: the sweep is a callback.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "accel_dra/common/status.h"
#include "accel_dra/discovery/events.h"
#include "accel_dra/discovery/health.h"
#include "accel_dra/discovery/manager.h"
#include "accel_dra/discovery/nvml.h"
#include "accel_dra/model/device.h"
#include "accel_dra/model/prepared_claim.h"
#include "accel_dra/node/node_watch.h"
#include "accel_dra/node/pool_composer.h"
#include "accel_dra/node/wakeup.h"

namespace accel_dra::node {

// The latest device snapshot: set by the agent's loop thread, read by any thread (gRPC).
class InventoryHolder {
 public:
  void Set(model::InventoryPtr inv) {
    std::lock_guard<std::mutex> lock(mu_);
    inv_ = std::move(inv);
  }
  model::InventoryPtr Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return inv_;
  }

 private:
  mutable std::mutex mu_;
  model::InventoryPtr inv_;
};

class NodeAgent {
 public:
  struct Options {
    PoolComposer::Options pool;
    // Cheap change checks (DeviceManager::MaybeChanged) and health re-checks:
    // --rediscover-interval.
    std::chrono::milliseconds check_every{500};
    // Full rescans: --rescan-interval with an event source; the caller passes check_every when
    // hotplug can only be noticed by rescanning.
    std::chrono::milliseconds rescan_every{std::chrono::seconds(30)};
    // The stale-claim sweep: --cleanup-interval.
    std::chrono::milliseconds sweep_every{std::chrono::seconds(60)};
    // How long a burst of device events may go on before the one rescan it causes.
    std::chrono::milliseconds event_settle{50};
  };
  // Borrowed; they must outlive the agent.
  struct Parts {
    discovery::DeviceManager* devices = nullptr;           // required
    discovery::DeviceEventSource* events = nullptr;        // nullptr: no hotplug events
    discovery::DeviceHealthTracker* health = nullptr;      // required
    const discovery::NvmlEnrichedBackend* nvml = nullptr;  // nullptr: no NVML health check
    NodeAttributeSource* node_attributes = nullptr;        // nullptr: driver-only attributes
    PoolComposer::Sink publish;                            // the composed pool
  };
  using Sweep = std::function<void()>;

  // Fails only when the signalfd or the Stop() eventfd cannot be created.
  static Expected<std::unique_ptr<NodeAgent>> Create(Options options, Parts parts);
  ~NodeAgent();
  NodeAgent(const NodeAgent&) = delete;
  NodeAgent& operator=(const NodeAgent&) = delete;

  // The latest inventory (as discovered, without health or node attributes). Any thread.
  const InventoryHolder& inventory() const { return inventory_; }
  // Reads the node attributes and publishes when anything changed. Run() does this on every
  // change; call it once before Run() to publish before the rest of the start-up.
  void Publish();
  // The devices prepared claims hold (the claims core's checkpoint, through the model's seam);
  // checked at once and on every health re-check. Call on the loop thread, before Run().
  void SetHeldDevices(model::HeldDevicesSource held);
  // The loop, until SIGINT/SIGTERM or Stop(). `sweep` (may be empty) runs every sweep_every.
  void Run(const Sweep& sweep);
  // Ends Run() (from any thread; before Run(), Run() returns at once).
  void Stop() { stop_->Notify(); }

 private:
  struct Ready {
    bool shutdown = false;
    bool device_event = false;
    bool node_attributes = false;
  };
  NodeAgent(Options options, Parts parts, int signal_fd, std::unique_ptr<Wakeup> stop);
  Ready Wait(std::chrono::steady_clock::time_point until);
  void Rescan();
  void CheckHealth();
  void ReadNodeAttributes();
  // Held devices that vanished or changed, by the name their claims hold them under (logged
  // once per change).
  std::map<std::string, discovery::HealthProblem> CheckHeld(const model::Inventory& inventory);

  Options options_;
  Parts parts_;
  int signal_fd_;
  std::unique_ptr<Wakeup> stop_;
  PoolComposer composer_;
  InventoryHolder inventory_;
  model::HeldDevicesSource held_;
  std::map<std::string, std::string> held_reported_;  // "<claim>: device <name>" → last logged
};

}  // namespace accel_dra::node
