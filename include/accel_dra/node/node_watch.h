#pragma once
// NodeAttributeWatcher keeps the node-level device attributes (discovery/node_runtime.h) of the
// plugin's own Node current, and notifies; it does not publish.
//
// Promises:
//  - Start() reads the Node once before returning (bounded by the client's request deadline), so
//    the first slices already carry the runtime attributes; then a background thread watches the
//    Node (field selector on its name) and re-reads it after every watch end or error.
//  - It notifies and nothing more: when the attributes differ from the last ones, current() has
//    the new ones and then fd() becomes readable (a Wakeup) until Drain(). Its thread calls no
//    other code, so whoever polls fd() (the NodeAgent's loop) composes and publishes on its own
//    thread. An unchanged Node (e.g. kubelet's periodic status updates) does not notify.
//  - A missing Node or one without runtime information yields the attributes without runtime
//    facts (sharingMode only); each distinct problem is logged once. A transient read error keeps
//    the last known attributes. Nothing here ends the process.
//  - The containerd configuration (for cdiEnabled) is re-read whenever the Node is.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "accel_dra/common/env.h"
#include "accel_dra/discovery/node_runtime.h"
#include "accel_dra/kube/client.h"
#include "accel_dra/node/wakeup.h"

namespace accel_dra::node {

// What the NodeAgent needs from a source of node-level attributes: a pollable fd that becomes
// readable after current() changed, Drain() to clear it, and the attributes themselves. Drain()
// and current() may be called from any thread.
class NodeAttributeSource {
 public:
  virtual ~NodeAttributeSource() = default;
  virtual int fd() const = 0;
  virtual void Drain() = 0;
  virtual discovery::NodeAttributes current() const = 0;
};

class NodeAttributeWatcher : public NodeAttributeSource {
 public:
  struct Options {
    std::string node_name;
    // Host path of the containerd configuration, read under host_root.
    std::string containerd_config = "/etc/containerd/config.toml";
    HostRoot host_root;
    std::chrono::milliseconds watch_timeout{std::chrono::minutes(5)};
    std::chrono::milliseconds backoff_max{std::chrono::seconds(30)};
  };

  // Fails only when the Wakeup (an eventfd) cannot be created.
  static Expected<std::unique_ptr<NodeAttributeWatcher>> Create(kube::ResourceApi* api, Env* env,
                                                                Options options);
  ~NodeAttributeWatcher() override;
  NodeAttributeWatcher(const NodeAttributeWatcher&) = delete;
  NodeAttributeWatcher& operator=(const NodeAttributeWatcher&) = delete;

  void Start();
  void Stop();  // idempotent
  int fd() const override { return wakeup_->fd(); }
  void Drain() override { wakeup_->Drain(); }
  discovery::NodeAttributes current() const override;

 private:
  NodeAttributeWatcher(kube::ResourceApi* api, Env* env, Options options,
                       std::unique_ptr<Wakeup> wakeup);
  void Loop(std::string resource_version);
  // Re-reads the Node; returns its resourceVersion ("" when it could not be read).
  std::string Read();
  void Apply(const nlohmann::json& node);
  discovery::ContainerdConfig ReadContainerdConfig();
  void WarnOnce(const std::string& message);

  kube::ResourceApi* api_;
  Env* env_;
  Options options_;
  std::unique_ptr<Wakeup> wakeup_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  discovery::NodeAttributes current_;
  bool have_current_ = false;
  std::set<std::string> warned_;

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace accel_dra::node
