#pragma once
// SlicePublisher owns one node's pool of ResourceSlices for one driver and keeps the apiserver in
// step with the latest Inventory it was given.
//
// Promises:
//  - Slices are named by the apiserver (generateName) and carry spec.nodeName, so kubelet's
//    per-node clean-ups and field selectors work.
//  - All slices of the pool carry the same pool generation and a correct resourceSliceCount; the
//    generation grows only when the published content really changes.
//  - When the published state already matches, it makes no writes (reads only).
//  - Slices deleted or changed by someone else (e.g. kubelet wiping a node's slices when it
//    starts) are noticed through a watch and republished.
//  - Device taints the apiserver drops (feature gate DRADeviceTaints off) are reported once
//    and then ignored when comparing, so they never cause endless rewrites.
//  - Failures are retried with capped exponential backoff; nothing here blocks forever.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "accel_dra/kube/client.h"
#include "accel_dra/slices/slices.h"

namespace accel_dra::slices {

class SlicePublisher {
 public:
  struct Options {
    PoolOptions pool;
    std::chrono::milliseconds backoff_min{200};
    std::chrono::milliseconds backoff_max{10000};
    // A full re-list this often even without events (reads only; writes only on a difference).
    std::chrono::milliseconds resync{std::chrono::minutes(10)};
    std::chrono::milliseconds watch_timeout{std::chrono::minutes(5)};
  };
  struct Stats {
    uint64_t lists = 0;
    uint64_t creates = 0;
    uint64_t updates = 0;
    uint64_t deletes = 0;
    int64_t generation = 0;
    size_t slices = 0;
    bool in_sync = false;
    std::string last_error;
  };

  SlicePublisher(kube::ResourceApi* api, Options options);
  ~SlicePublisher();
  SlicePublisher(const SlicePublisher&) = delete;
  SlicePublisher& operator=(const SlicePublisher&) = delete;

  // Starts the reconcile and watch threads.
  void Start();
  // Publishes this inventory (non-blocking; the latest call wins). Equal inventories are no-ops.
  void Update(model::InventoryPtr inventory);
  // Blocks until the latest inventory is published or the timeout passes; true when published.
  bool WaitInSync(std::chrono::milliseconds timeout);
  // Stops the threads (idempotent).
  void Stop();
  // Deletes every slice of this driver on this node (for a clean --delete-slices-on-exit).
  // Call after Stop().
  Status DeleteAll();

  Stats stats() const;

 private:
  void ReconcileLoop();
  void WatchLoop();
  Status Reconcile(const model::InventoryPtr& inventory);
  // Reconcile's steps.
  struct Listed;  // this node's slices as listed: our pool's, other pools', highest generation
  struct Writes {
    uint64_t creates = 0;
    uint64_t updates = 0;
    uint64_t deletes = 0;
  };
  Expected<Listed> ListPool();
  void RecordInSync(const Listed& listed);
  Status WriteSlices(const std::vector<std::vector<Json>>& chunks,
                     const std::vector<Json>& existing, const std::vector<int>& match,
                     int64_t generation, Writes& writes);
  Status DeleteSlice(const Json& slice, Writes& writes);
  void RecordPublished(int64_t generation, size_t slices, size_t devices, const Writes& writes);
  void MarkDirty();
  std::string FieldSelector() const;

  kube::ResourceApi* api_;
  Options options_;
  std::atomic<bool> taints_dropped_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  model::InventoryPtr desired_;
  model::InventoryPtr published_;
  bool dirty_ = false;
  bool stop_requested_ = false;
  Stats stats_;
  int64_t last_generation_ = 0;
  std::string list_resource_version_;
  // Resource versions our own writes produced (their watch events are not "foreign changes").
  std::set<std::string> own_versions_;
  std::set<std::string> own_deletes_;

  std::atomic<bool> stop_{false};
  std::thread reconcile_thread_;
  std::thread watch_thread_;
};

}  // namespace accel_dra::slices
