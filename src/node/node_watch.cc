#include "accel_dra/node/node_watch.h"

#include <algorithm>

#include "accel_dra/common/log.h"

namespace accel_dra::node {

Expected<std::unique_ptr<NodeAttributeWatcher>> NodeAttributeWatcher::Create(kube::ResourceApi* api,
                                                                             Env* env,
                                                                             Options options) {
  ASSIGN_OR_RETURN(auto wakeup, Wakeup::Create());
  return std::unique_ptr<NodeAttributeWatcher>(
      new NodeAttributeWatcher(api, env, std::move(options), std::move(wakeup)));
}

NodeAttributeWatcher::NodeAttributeWatcher(kube::ResourceApi* api, Env* env, Options options,
                                           std::unique_ptr<Wakeup> wakeup)
    : api_(api), env_(env), options_(std::move(options)), wakeup_(std::move(wakeup)) {}

NodeAttributeWatcher::~NodeAttributeWatcher() { Stop(); }

void NodeAttributeWatcher::WarnOnce(const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (warned_.insert(message).second) spdlog::warn("node attributes: {}", message);
}

discovery::NodeAttributes NodeAttributeWatcher::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

discovery::ContainerdConfig NodeAttributeWatcher::ReadContainerdConfig() {
  discovery::ContainerdConfig c;
  if (options_.containerd_config.empty()) return c;
  auto path = options_.host_root.Path(options_.containerd_config);
  auto content = env_->ReadFile(path);
  if (!content.ok()) {
    if (content.status().code() != Code::kNotFound) {
      WarnOnce("cannot read " + path.string() + " (" + content.status().message() +
               "); cdiEnabled follows the runtime's defaults only");
    }
    return c;
  }
  c.readable = true;
  c.enable_cdi = discovery::ContainerdConfigEnableCdi(*content);
  return c;
}

void NodeAttributeWatcher::Apply(const nlohmann::json& node) {
  auto attrs = discovery::NodeAttributesFromNode(node, ReadContainerdConfig());
  for (const auto& note : attrs.notes) WarnOnce(note);
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Notes do not count as a change: only what would be published.
    if (have_current_ && current_.attributes == attrs.attributes) return;
    current_ = attrs;
    have_current_ = true;
  }
  std::string summary;
  for (const auto& [name, value] : attrs.attributes) {
    if (!summary.empty()) summary += ", ";
    summary += name + "=" + value.ToJson().begin().value().dump();
  }
  spdlog::info("node attributes of {}: {}", options_.node_name, summary);
  wakeup_->Notify();
}

std::string NodeAttributeWatcher::Read() {
  auto node = api_->GetNode(options_.node_name);
  if (node.ok()) {
    Apply(*node);
    auto ptr = "/metadata/resourceVersion"_json_pointer;
    return node->contains(ptr) && (*node)[ptr].is_string() ? (*node)[ptr].get<std::string>() : "";
  }
  if (node.status().code() == Code::kNotFound) {
    WarnOnce("Node " + options_.node_name +
             " does not exist: devices are published without container runtime attributes");
    Apply(nullptr);
  } else {
    WarnOnce("cannot read Node " + options_.node_name + " (" + node.status().message() +
             "); keeping the last known container runtime attributes");
    std::lock_guard<std::mutex> lock(mu_);
    if (!have_current_) {
      current_ = discovery::DriverOnlyAttributes();
      have_current_ = true;
    }
  }
  return "";
}

void NodeAttributeWatcher::Start() {
  std::string rv = Read();
  thread_ = std::thread([this, rv] { Loop(rv); });
}

void NodeAttributeWatcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NodeAttributeWatcher::Loop(std::string rv) {
  constexpr auto kBackoffMin = std::chrono::milliseconds(500);
  auto backoff = kBackoffMin;
  auto pause = [&] {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, backoff, [this] { return stop_.load(); });
    backoff = std::min(backoff * 2, options_.backoff_max);
  };
  while (!stop_) {
    if (rv.empty()) {  // the Node could not be read: try again later
      pause();
      if (!stop_) rv = Read();
      continue;
    }
    auto started = std::chrono::steady_clock::now();
    Status st = api_->WatchNode(
        options_.node_name, rv,
        [this](const kube::WatchEvent& ev) {
          if (ev.type == "ADDED" || ev.type == "MODIFIED") Apply(ev.object);
          if (ev.type == "DELETED") {
            WarnOnce("Node " + options_.node_name +
                     " was deleted: devices are published without container runtime attributes");
            Apply(nullptr);
          }
          return !stop_.load();
        },
        options_.watch_timeout, &stop_);
    if (stop_) break;
    if (!st.ok()) {
      if (st.code() == Code::kPermissionDenied) {
        WarnOnce("cannot watch Node " + options_.node_name + " (" + st.message() +
                 "); grant \"watch\" on nodes for prompt updates, re-reading it meanwhile");
      } else {
        spdlog::debug("node attributes: watch of Node {} ended: {}", options_.node_name,
                      st.message());
      }
      // A watch that failed at once (e.g. no permission to watch nodes) is not retried in a
      // tight loop; one that ran for a while was healthy.
      if (std::chrono::steady_clock::now() - started < std::chrono::seconds(30)) {
        pause();
      } else {
        backoff = kBackoffMin;
      }
    } else {
      backoff = kBackoffMin;
    }
    if (!stop_) rv = Read();  // whatever the watch may have missed
  }
}

}  // namespace accel_dra::node
