// The probe's cluster session: connection, objects, waits, clean-up (see cluster_session.h).

#include "cluster_session.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>
#include <thread>

#include "accel_dra/common/json_path.h"
#include "accel_dra/common/strings.h"
#include "accel_dra/common/yaml.h"
#include "accel_dra/probe/evidence.h"
#include "accel_dra/probe/verdicts.h"

namespace accel_dra::probe {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

std::string RandomSuffix() {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::mt19937_64 rng{std::random_device{}()};
  std::string s;
  for (int i = 0; i < 5; ++i) s += kChars[rng() % 36];
  return s;
}

std::string Kind(const Json& obj, const std::string& resource) {
  return obj.value("kind", resource);
}

}  // namespace

ClusterSession::ClusterSession(const RunOptions& options, const std::atomic<bool>* stop,
                               const ProgressFn& progress)
    : opt_(options), stop_(stop), progress_(progress) {}

ClusterSession::~ClusterSession() { (void)Close(); }

void ClusterSession::Say(const std::string& msg) const {
  auto secs = std::chrono::duration<double>(Clock::now() - start_).count();
  char buf[32];
  std::snprintf(buf, sizeof(buf), "[%6.1fs] ", secs);
  if (progress_) progress_(buf + msg);
}

bool ClusterSession::StopRequested() {
  if (stop_ != nullptr && stop_->load()) interrupted_ = true;
  return interrupted_;
}

bool ClusterSession::Nap(milliseconds d) {
  auto until = Clock::now() + d;
  while (Clock::now() < until) {
    if (StopRequested()) return false;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return true;
}

template <typename T>
Expected<T> ClusterSession::Poll(const std::string& what, std::chrono::seconds timeout,
                                 const std::function<Expected<std::optional<T>>()>& f,
                                 const std::function<std::string()>& state) {
  auto deadline = Clock::now() + timeout;
  Status last_error;
  for (;;) {
    if (StopRequested()) {
      return FailedPrecondition("interrupted by a signal while waiting for " + what);
    }
    auto r = f();
    if (r.ok() && r->has_value()) return std::move(**r);
    if (!r.ok()) {
      if (r.status().code() != Code::kUnavailable && r.status().code() != Code::kNotFound) {
        return r.status();
      }
      last_error = r.status();
    }
    if (Clock::now() >= deadline) {
      std::string msg =
          "timed out after " + std::to_string(timeout.count()) + " s waiting for " + what;
      std::string s = state ? state() : "";
      if (!s.empty()) msg += ": " + s;
      if (!last_error.ok()) msg += " (last error: " + last_error.message() + ")";
      return DeadlineExceeded(msg);
    }
    if (!Nap(milliseconds(500))) {
      return FailedPrecondition("interrupted by a signal while waiting for " + what);
    }
  }
}

// --- opening and closing -------------------------------------------------------------------------

Status ClusterSession::Open() {
  auto cfg = kube::ResolveConfig(opt_.kubeconfig);
  if (!cfg.ok()) return cfg.status().WithContext("loading the kubeconfig");
  cfg->user_agent = "accel-dra-probe/" + opt_.probe_version;
  auto client = kube::Client::Create(*cfg);
  if (!client.ok()) return client.status();
  client_ = std::move(client.value());
  core_ = std::make_unique<kube::CoreApi>(client_.get());
  res_ = std::make_unique<kube::ResourceApi>(client_.get());
  auto version = core_->ServerVersion();
  if (!version.ok())
    return version.status().WithContext("reading the apiserver version (/version)");
  server_version_ = JsonString(*version, {"gitVersion"});
  Say("connected to " + cfg->server + ": Kubernetes " + server_version_);
  dra_version_ = res_->Version();
  RETURN_IF_ERROR(CreateNamespace());
  if (!opt_.device_class.empty()) {
    base_class_ = opt_.device_class;
  } else if (dra_version_.ok()) {
    RETURN_IF_ERROR(CreatePlainClass());
  }
  return Status::Ok();
}

Status ClusterSession::CreateNamespace() {
  ns_ = opt_.namespace_prefix + "-" + RandomSuffix();
  auto created = core_->CreateNamespace(ns_, {{std::string(kProbeLabel), ns_}});
  if (!created.ok()) return created.status().WithContext("creating namespace " + ns_);
  Say("created namespace " + ns_);
  auto sa = Poll<Json>("the default ServiceAccount in namespace " + ns_, opt_.timeout,
                       [&]() -> Expected<std::optional<Json>> {
                         auto r = core_->GetServiceAccount(ns_, "default");
                         if (!r.ok()) return r.status();
                         return std::optional<Json>(*r);
                       });
  return sa.ok() ? Status::Ok() : sa.status();
}

Status ClusterSession::CreatePlainClass() {
  CheckResult setup;
  auto r = CreateObject(setup, "deviceclasses",
                        DeviceClassManifest(ns_, {DriverCel(opt_.driver)}, ns_), true);
  if (!r.ok()) return r.status();
  base_class_ = ns_;
  base_class_manifest_ = setup.manifests.front();
  return Status::Ok();
}

std::vector<std::string> ClusterSession::Close() {
  if (closed_ || core_ == nullptr) return {};
  closed_ = true;
  auto deadline = Clock::now() + opt_.cleanup_timeout;
  std::vector<std::string> cleanup = DeleteCreated();
  if (!ns_.empty()) WaitNamespaceGone(deadline, cleanup);
  return cleanup;
}

std::vector<std::string> ClusterSession::DeleteCreated() {
  std::vector<std::string> cleanup;
  if (!ns_.empty()) {
    auto pods = core_->ListPods(ns_);
    if (pods.ok()) {
      for (const auto& p : *pods) {
        (void)core_->DeletePod(ns_, JsonString(p, {"metadata", "name"}), 1);
      }
    }
    Status st = core_->DeleteNamespace(ns_);
    if (!st.ok()) cleanup.push_back("deleting namespace " + ns_ + " failed: " + st.message());
  }
  for (const auto& cls : classes_) {
    Status st = res_->DeleteObject("deviceclasses", "", cls);
    cleanup.push_back(st.ok() ? "deleted DeviceClass " + cls
                              : "deleting DeviceClass " + cls + " failed: " + st.message());
  }
  return cleanup;
}

// Its own loop, not Poll: clean-up runs after an interruption too.
void ClusterSession::WaitNamespaceGone(Clock::time_point deadline,
                                       std::vector<std::string>& cleanup) {
  Say("cleaning up: waiting for namespace " + ns_ + " to be deleted");
  for (;;) {
    auto got = core_->GetNamespace(ns_);
    if (!got.ok() && got.status().code() == Code::kNotFound) {
      cleanup.push_back("deleted namespace " + ns_ + " (its pods, claims and templates)");
      Say("namespace " + ns_ + " deleted");
      return;
    }
    if (Clock::now() >= deadline) {
      cleanup.push_back("namespace " + ns_ + " still exists after " +
                        std::to_string(opt_.cleanup_timeout.count()) + " s (deletion requested)");
      Say("warning: namespace " + ns_ + " is still being deleted");
      return;
    }
    std::this_thread::sleep_for(milliseconds(250));
  }
}

// --- objects -------------------------------------------------------------------------------------

Expected<Json> ClusterSession::CreateObject(CheckResult& c, const std::string& resource,
                                            const Json& obj, bool cluster_scoped) {
  std::string name = JsonString(obj, {"metadata", "name"});
  c.manifests.push_back({Kind(obj, resource) + " " + name, JsonToYaml(obj)});
  auto r = res_->CreateObject(resource, cluster_scoped ? "" : ns_, obj);
  if (!r.ok()) return r.status().WithContext("creating " + Kind(obj, resource) + " " + name);
  if (cluster_scoped) classes_.push_back(name);
  Say("created " + Kind(obj, resource) + " " + name);
  return r;
}

Expected<Json> ClusterSession::CreatePod(CheckResult& c, const PodSpec& spec) {
  Json pod = PodManifest(spec);
  c.manifests.push_back({"Pod " + spec.name, JsonToYaml(pod)});
  pods_created_.push_back(pod);
  auto r = core_->CreatePod(ns_, pod);
  if (!r.ok()) return r.status().WithContext("creating pod " + spec.name);
  Say("created pod " + spec.name);
  return r;
}

PodSpec ClusterSession::NewPod(const std::string& name,
                               std::vector<std::pair<std::string, bool>> containers,
                               const std::string& tmpl, const std::string& claim) const {
  PodSpec s;
  s.name = name;
  s.image = opt_.image;
  s.pull_policy = opt_.pull_policy;
  s.containers = std::move(containers);
  s.claim_template = tmpl;
  s.claim_name = claim;
  s.node_selector = opt_.node_selector;
  s.label_value = ns_;
  return s;
}

std::map<std::string, std::string> ClusterSession::OnNode(const std::string& node) const {
  auto sel = opt_.node_selector;
  sel["kubernetes.io/hostname"] = node;
  return sel;
}

// --- reading -------------------------------------------------------------------------------------

Expected<ClusterInventory> ClusterSession::LoadInventory() {
  std::string selector;
  for (const auto& [k, v] : opt_.node_selector) {
    selector += (selector.empty() ? "" : ",") + k + "=" + v;
  }
  ASSIGN_OR_RETURN(auto all_nodes, core_->ListNodes(""));
  std::set<std::string> selected;
  if (!selector.empty()) {
    ASSIGN_OR_RETURN(auto sel_nodes, core_->ListNodes(selector));
    for (const auto& n : sel_nodes) selected.insert(JsonString(n, {"metadata", "name"}));
  }
  ASSIGN_OR_RETURN(auto slices, res_->ListResourceSlices("", "spec.driver=" + opt_.driver));
  if (record_ != nullptr) RecordRaw(*record_, SlicesOutput(slices.items, opt_.driver));
  return BuildClusterInventory(all_nodes, selector.empty() ? nullptr : &selected, slices.items);
}

Expected<std::vector<std::string>> ClusterSession::ServedDraResources() {
  return res_->ServedResources();
}

Expected<Json> ClusterSession::GetClaim(const std::string& name) {
  auto claim = res_->GetObject("resourceclaims", ns_, name);
  if (claim.ok() && record_ != nullptr) RecordRaw(*record_, ClaimOutput(*claim));
  return claim;
}

Expected<std::vector<Json>> ClusterSession::ListClaimsEverywhere() {
  return res_->ListObjects("resourceclaims", "");
}

Expected<Json> ClusterSession::PodClaim(const Json& pod) {
  std::string claim;
  for (const auto& s : JsonOrNull(pod, {"status", "resourceClaimStatuses"})) {
    if (JsonString(s, {"name"}) == kClaimRef) claim = JsonString(s, {"resourceClaimName"});
  }
  for (const auto& s : JsonOrNull(pod, {"spec", "resourceClaims"})) {
    if (JsonString(s, {"name"}) == kClaimRef && !JsonString(s, {"resourceClaimName"}).empty()) {
      claim = JsonString(s, {"resourceClaimName"});
    }
  }
  if (claim.empty()) {
    return NotFound("pod " + JsonString(pod, {"metadata", "name"}) + " has no claim");
  }
  return GetClaim(claim);
}

std::vector<std::string> ClusterSession::AllocatedDevices(const Json& claim) const {
  std::vector<std::string> out;
  for (const auto& r : JsonOrNull(claim, {"status", "allocation", "devices", "results"})) {
    if (JsonString(r, {"driver"}) == opt_.driver) {
      out.push_back(JsonString(r, {"pool"}) + "/" + JsonString(r, {"device"}));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ClusterSession::PendingClaimDevices(const std::string& pod_name) {
  auto pod = core_->GetPod(ns_, pod_name);
  if (!pod.ok()) return "";
  auto claim = PodClaim(*pod);
  if (!claim.ok()) return "";  // not even created: certainly unallocated
  return Join(AllocatedDevices(*claim));
}

std::string ClusterSession::PodState(const std::string& name) {
  auto pod = core_->GetPod(ns_, name);
  if (!pod.ok()) return pod.status().message();
  std::vector<std::string> parts;
  parts.push_back("phase " + JsonString(*pod, {"status", "phase"}));
  for (const auto& cond : JsonOrNull(*pod, {"status", "conditions"})) {
    if (JsonString(cond, {"status"}) == "True") continue;
    std::string s = JsonString(cond, {"type"}) + "=False";
    if (!JsonString(cond, {"reason"}).empty()) s += " (" + JsonString(cond, {"reason"}) + ")";
    if (!JsonString(cond, {"message"}).empty()) s += ": " + JsonString(cond, {"message"});
    parts.push_back(s);
  }
  for (const auto& cs : JsonOrNull(*pod, {"status", "containerStatuses"})) {
    std::string reason = JsonString(cs, {"state", "waiting", "reason"});
    if (!reason.empty()) {
      parts.push_back("container " + JsonString(cs, {"name"}) + " waiting: " + reason + " " +
                      JsonString(cs, {"state", "waiting", "message"}));
    }
  }
  auto events = core_->ListEvents(ns_, "involvedObject.name=" + name);
  if (events.ok()) {
    for (const auto& e : *events) {
      if (JsonString(e, {"type"}) != "Warning") continue;
      std::string message = JsonString(e, {"message"});
      if (Join(parts).find(message) != std::string::npos) continue;  // said already
      parts.push_back("event " + JsonString(e, {"reason"}) + ": " + message);
    }
  }
  return Join(parts, "; ");
}

// --- waits ---------------------------------------------------------------------------------------

std::string ClusterSession::PrepareFailure(const std::string& name) {
  auto events = core_->ListEvents(ns_, "involvedObject.name=" + name);
  if (!events.ok()) return "";
  for (const auto& e : *events) {
    if (JsonString(e, {"reason"}) != "FailedPrepareDynamicResources") continue;
    std::string message = JsonString(e, {"message"});
    if (!IsTransientPrepareFailure(message)) return message;
  }
  return "";
}

Expected<Json> ClusterSession::WaitRunning(const std::string& name) {
  Say("waiting for pod " + name + " to run");
  return Poll<Json>(
      "pod " + name + " to run", opt_.timeout,
      [&]() -> Expected<std::optional<Json>> {
        auto pod = core_->GetPod(ns_, name);
        if (!pod.ok()) return pod.status();
        std::string phase = JsonString(*pod, {"status", "phase"});
        if (phase == "Failed" || phase == "Succeeded") {
          return FailedPrecondition("pod " + name + " ended (" + phase + "): " + PodState(name));
        }
        bool ready = phase == "Running";
        for (const auto& cs : JsonOrNull(*pod, {"status", "containerStatuses"})) {
          if (!cs.value("ready", false)) ready = false;
        }
        if (ready) return std::optional<Json>(*pod);
        // The kubelet could not prepare the claim: the driver's answer is the cause.
        if (std::string why = PrepareFailure(name); !why.empty()) {
          return FailedPrecondition("pod " + name + " cannot start: the kubelet could not " +
                                    "prepare its claim: " + why);
        }
        return std::optional<Json>();
      },
      [&] { return "pod state: " + PodState(name); });
}

Expected<std::string> ClusterSession::WaitUnschedulable(const std::string& name) {
  Say("waiting for the scheduler's verdict on pod " + name);
  return Poll<std::string>(
      "the scheduler to report pod " + name + " Unschedulable", opt_.timeout,
      [&]() -> Expected<std::optional<std::string>> {
        auto pod = core_->GetPod(ns_, name);
        if (!pod.ok()) return pod.status();
        std::string node = JsonString(*pod, {"spec", "nodeName"});
        if (!node.empty()) {
          return FailedPrecondition("pod " + name + " was scheduled to node " + node +
                                    " although no device should be available for it");
        }
        for (const auto& cond : JsonOrNull(*pod, {"status", "conditions"})) {
          if (JsonString(cond, {"type"}) == "PodScheduled" &&
              JsonString(cond, {"status"}) == "False" &&
              JsonString(cond, {"reason"}) == "Unschedulable") {
            std::string message = JsonString(cond, {"message"});
            if (record_ != nullptr) RecordRaw(*record_, SchedulingOutput(ns_, name, message));
            return std::optional<std::string>(message);
          }
        }
        return std::optional<std::string>();
      },
      [&] { return "pod state: " + PodState(name); });
}

Expected<InspectResult> ClusterSession::WaitInspect(const std::string& pod,
                                                    const std::string& container) {
  std::string last;
  return Poll<InspectResult>(
      "the inspect output of " + pod + "/" + container, opt_.timeout,
      [&]() -> Expected<std::optional<InspectResult>> {
        auto logs = core_->PodLogs(ns_, pod, container);
        if (!logs.ok()) {  // e.g. 400 "container is waiting to start": try again
          last = logs.status().message();
          return std::optional<InspectResult>();
        }
        last = *logs;
        InspectResult r = ParseResult(*logs);
        if (!r.done) return std::optional<InspectResult>();
        if (record_ != nullptr) RecordRaw(*record_, LogsOutput(ns_, pod, container, *logs));
        return std::optional<InspectResult>(r);
      },
      [&] { return "log so far: " + last.substr(0, 500); });
}

Status ClusterSession::WaitGone(const std::string& what,
                                const std::function<Expected<std::vector<Json>>()>& list) {
  auto gone = Poll<bool>(what, opt_.cleanup_timeout, [&]() -> Expected<std::optional<bool>> {
    auto l = list();
    if (!l.ok()) return l.status();
    return l->empty() ? std::optional<bool>(true) : std::nullopt;
  });
  return gone.ok() ? Status::Ok() : gone.status();
}

Status ClusterSession::ResetNamespace() {
  auto pods = core_->ListPods(ns_);
  if (!pods.ok()) return pods.status();
  if (pods->empty()) return Status::Ok();
  for (const auto& p : *pods) {
    RETURN_IF_ERROR(core_->DeletePod(ns_, JsonString(p, {"metadata", "name"}), 1));
  }
  Say("deleting " + std::to_string(pods->size()) + " pod(s) and their claims");
  RETURN_IF_ERROR(WaitGone("the probe's pods to be deleted", [&] { return core_->ListPods(ns_); }));
  auto claims = res_->ListObjects("resourceclaims", ns_);
  if (!claims.ok()) return claims.status();
  for (const auto& cl : *claims) {
    RETURN_IF_ERROR(
        res_->DeleteObject("resourceclaims", ns_, JsonString(cl, {"metadata", "name"})));
  }
  return WaitGone("the probe's ResourceClaims to be deleted",
                  [&] { return res_->ListObjects("resourceclaims", ns_); });
}

}  // namespace accel_dra::probe
