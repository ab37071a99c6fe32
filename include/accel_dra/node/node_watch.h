#pragma once
// NodeAttributeWatcher keeps the node-level device attributes (discovery/node_runtime.h) of the
// plugin's own Node current.
//
// Promises:
//  - Start() reads the Node once before returning (bounded by the client's request deadline), so
//    the first slices already carry the runtime attributes; then a background thread watches the
//    Node (field selector on its name) and re-reads it after every watch end or error.
//  - on_change is called (from the watch thread) only when the attributes differ from the last
//    ones reported, so an unchanged Node (e.g. kubelet's periodic status updates) causes nothing.
//  - A missing Node or one without runtime information yields the attributes without runtime
//    facts (sharingMode only); each distinct problem is logged once. A transient read error keeps
//    the last known attributes. Nothing here ends the process.
//  - The containerd configuration (for cdiEnabled) is re-read whenever the Node is.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "accel_dra/common/env.h"
#include "accel_dra/discovery/node_runtime.h"
#include "accel_dra/kube/client.h"

namespace accel_dra::node {

class NodeAttributeWatcher {
 public:
  using OnChange = std::function<void(const discovery::NodeAttributes&)>;
  struct Options {
    std::string node_name;
    // Host path of the containerd configuration, read under host_root.
    std::string containerd_config = "/etc/containerd/config.toml";
    HostRoot host_root;
    std::chrono::milliseconds watch_timeout{std::chrono::minutes(5)};
    std::chrono::milliseconds backoff_max{std::chrono::seconds(30)};
  };

  NodeAttributeWatcher(kube::ResourceApi* api, Env* env, Options options, OnChange on_change);
  ~NodeAttributeWatcher();
  NodeAttributeWatcher(const NodeAttributeWatcher&) = delete;
  NodeAttributeWatcher& operator=(const NodeAttributeWatcher&) = delete;

  void Start();
  void Stop();  // idempotent
  discovery::NodeAttributes current() const;

 private:
  void Loop(std::string resource_version);
  // Re-reads the Node; returns its resourceVersion ("" when it could not be read).
  std::string Read();
  void Apply(const nlohmann::json& node);
  discovery::ContainerdConfig ReadContainerdConfig();
  void WarnOnce(const std::string& message);

  kube::ResourceApi* api_;
  Env* env_;
  Options options_;
  OnChange on_change_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  discovery::NodeAttributes current_;
  bool have_current_ = false;
  std::set<std::string> warned_;

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace accel_dra::node
