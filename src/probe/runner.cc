// accel-dra-probe cluster mode: setup, the four checks, clean-up (see runner.h).

#include "accel_dra/probe/runner.h"

#include <algorithm>
#include <ctime>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "accel_dra/common/json_path.h"
#include "accel_dra/common/strings.h"
#include "accel_dra/common/yaml.h"
#include "accel_dra/kube/client.h"
#include "accel_dra/probe/inspect.h"
#include "accel_dra/probe/manifests.h"

namespace accel_dra::probe {
namespace {

using kube::Json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string Str(const Json& j, std::initializer_list<const char*> path) {
  const Json* cur = &j;
  for (const char* k : path) {
    if (!cur->is_object()) return "";
    auto it = cur->find(k);
    if (it == cur->end()) return "";
    cur = &*it;
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_number_integer()) return std::to_string(cur->get<int64_t>());
  if (cur->is_boolean()) return cur->get<bool>() ? "true" : "false";
  return "";
}

std::string RandomSuffix() {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::mt19937_64 rng{std::random_device{}()};
  std::string s;
  for (int i = 0; i < 5; ++i) s += kChars[rng() % 36];
  return s;
}

std::string NowRfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// A device attribute of our driver as a string (bare or "<driver>/" qualified name).
std::string Attr(const Json& device, const std::string& driver, const std::string& name) {
  const Json& attrs = JsonOrNull(device, {"attributes"});
  if (!attrs.is_object()) return "";
  for (const std::string& key : {name, driver + "/" + name}) {
    auto it = attrs.find(key);
    if (it == attrs.end() || !it->is_object()) continue;
    for (const char* type : {"version", "string", "int", "bool"}) {
      auto v = it->find(type);
      if (v == it->end()) continue;
      if (v->is_string()) return v->get<std::string>();
      return v->dump();
    }
  }
  return "";
}

// The accelerator device nodes that stand for one device each: without shared control nodes
// (/dev/nvidiactl, /dev/nvidia-uvm*, /dev/nvidia-modeset, /dev/nvidia-caps/*, /dev/kfd) and without
// /dev/dri/renderD* (the render node of a /dev/dri/card*).
std::vector<std::string> PerDeviceNodes(const std::vector<std::string>& nodes) {
  std::vector<std::string> out;
  for (const auto& n : nodes) {
    if (n == "/dev/nvidiactl" || n.starts_with("/dev/nvidia-") || n == "/dev/kfd" ||
        n.starts_with("/dev/dri/renderD")) {
      continue;
    }
    out.push_back(n);
  }
  return out;
}

std::string Visible(const InspectResult& r) {
  auto it = r.accel_env.find("ACCEL_VISIBLE_DEVICES");
  return it == r.accel_env.end() ? "" : it->second;
}

struct DeviceInfo {
  std::string pool;
  std::string name;
  Json raw;
};

struct PoolInfo {
  std::string name;
  std::string node;
  int64_t generation = -1;
  int64_t expected_slices = 0;
  int slices_at_generation = 0;
  std::vector<DeviceInfo> devices;  // of the newest generation
  bool complete() const { return expected_slices > 0 && slices_at_generation == expected_slices; }
};

struct NodeInfo {
  std::string name;
  bool ready = false;
  bool selected = true;  // matches --node-selector
  Json raw;
};

struct Inventory {
  std::map<std::string, PoolInfo> pools;
  std::map<std::string, NodeInfo> nodes;
  // Devices of complete pools on Ready, selected nodes, by node.
  std::map<std::string, std::vector<DeviceInfo>> usable_by_node;
};

class Interrupted {};  // thrown inside the runner only, caught in RunProbe (never crosses modules)

class Runner {
 public:
  Runner(const RunOptions& opt, const std::atomic<bool>* stop, const ProgressFn& progress,
         Report* report)
      : opt_(opt), stop_(stop), progress_(progress), report_(report) {}

  Status Setup();
  void RunChecks();
  void Cleanup();

 private:
  // --- plumbing ------------------------------------------------------------------------------
  bool Stopped() const { return stop_ != nullptr && stop_->load(); }
  void Say(const std::string& msg) {
    auto secs = std::chrono::duration<double>(Clock::now() - start_).count();
    char buf[32];
    std::snprintf(buf, sizeof(buf), "[%6.1fs] ", secs);
    if (progress_) progress_(buf + msg);
  }
  void Nap(milliseconds d) {
    auto until = Clock::now() + d;
    while (Clock::now() < until) {
      if (Stopped()) throw Interrupted();
      std::this_thread::sleep_for(milliseconds(50));
    }
  }
  // Polls `f` (returns a value when done, nullopt to continue, or an error) every 500 ms.
  template <typename T>
  Expected<T> Poll(const std::string& what, std::chrono::seconds timeout,
                   const std::function<Expected<std::optional<T>>()>& f,
                   const std::function<std::string()>& state = nullptr) {
    auto deadline = Clock::now() + timeout;
    Status last_error;
    for (;;) {
      if (Stopped()) throw Interrupted();
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
      Nap(milliseconds(500));
    }
  }

  Expected<Json> CreatePod(CheckResult& c, const PodSpec& spec);
  Expected<Json> CreateObject(CheckResult& c, const std::string& resource, const Json& obj,
                              bool cluster_scoped = false);
  std::string PodState(const std::string& name);
  Expected<Json> WaitRunning(const std::string& name);
  Expected<std::string> WaitUnschedulable(const std::string& name);
  Expected<InspectResult> WaitInspect(const std::string& pod, const std::string& container);
  Expected<Json> PodClaim(const Json& pod);
  std::vector<std::string> AllocatedDevices(const Json& claim);  // "pool/device", sorted
  // The devices allocated to the claim of a pod that should be pending ("" when none).
  std::string PendingClaimDevices(const std::string& pod_name);
  Expected<Inventory> LoadInventory();
  Status ResetNamespace();
  std::string PlainClass() const { return base_class_; }
  std::map<std::string, std::string> OnNode(const std::string& node) const {
    auto sel = opt_.node_selector;
    sel["kubernetes.io/hostname"] = node;
    return sel;
  }
  PodSpec Pod(const std::string& name, std::vector<std::pair<std::string, bool>> containers,
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

  // --- checks --------------------------------------------------------------------------------
  bool RequireDevices(CheckResult& c);
  void DraSupport(CheckResult& c);
  void DriverRuntime(CheckResult& c);
  void GpuSharing(CheckResult& c);
  void SecureAccess(CheckResult& c);

  const RunOptions& opt_;
  const std::atomic<bool>* stop_;
  const ProgressFn& progress_;
  Report* report_;
  Clock::time_point start_ = Clock::now();
  std::unique_ptr<kube::Client> client_;
  std::unique_ptr<kube::CoreApi> core_;
  std::unique_ptr<kube::ResourceApi> res_;
  std::string ns_;
  std::string base_class_;
  Manifest base_class_manifest_;
  std::vector<std::string> classes_;  // DeviceClasses created (cluster-scoped)
  Status dra_api_;                    // resource.k8s.io discovery result
  std::vector<Json> pods_created_;
};

// A failed check: message set, status fail. Used as `return Fail(c, ...)`.
void Fail(CheckResult& c, const std::string& msg) {
  c.status = CheckStatus::kFail;
  c.message = msg;
}

Status Runner::Setup() {
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
  report_->server_version = Str(*version, {"gitVersion"});
  Say("connected to " + cfg->server + ": Kubernetes " + report_->server_version);
  auto v = res_->Version();
  dra_api_ = v.ok() ? Status::Ok() : v.status();

  ns_ = opt_.namespace_prefix + "-" + RandomSuffix();
  report_->namespace_ = ns_;
  auto created = core_->CreateNamespace(ns_, {{std::string(kProbeLabel), ns_}});
  if (!created.ok()) return created.status().WithContext("creating namespace " + ns_);
  Say("created namespace " + ns_);
  auto sa = Poll<Json>("the default ServiceAccount in namespace " + ns_, opt_.timeout,
                       [&]() -> Expected<std::optional<Json>> {
                         auto r = core_->GetServiceAccount(ns_, "default");
                         if (!r.ok()) return r.status();
                         return std::optional<Json>(*r);
                       });
  if (!sa.ok()) return sa.status();
  if (!opt_.device_class.empty()) {
    base_class_ = opt_.device_class;
  } else if (dra_api_.ok()) {
    CheckResult setup;
    auto r = CreateObject(setup, "deviceclasses",
                          DeviceClassManifest(ns_, {DriverCel(opt_.driver)}, ns_), true);
    if (!r.ok()) return r.status();
    base_class_ = ns_;
    base_class_manifest_ = setup.manifests.front();
  }
  return Status::Ok();
}

Expected<Json> Runner::CreateObject(CheckResult& c, const std::string& resource, const Json& obj,
                                    bool cluster_scoped) {
  std::string name = Str(obj, {"metadata", "name"});
  c.manifests.push_back({obj.value("kind", resource) + " " + name, JsonToYaml(obj)});
  auto r = res_->CreateObject(resource, cluster_scoped ? "" : ns_, obj);
  if (!r.ok())
    return r.status().WithContext("creating " + obj.value("kind", resource) + " " + name);
  if (cluster_scoped) classes_.push_back(name);
  Say("created " + obj.value("kind", resource) + " " + name);
  return r;
}

Expected<Json> Runner::CreatePod(CheckResult& c, const PodSpec& spec) {
  Json pod = PodManifest(spec);
  c.manifests.push_back({"Pod " + spec.name, JsonToYaml(pod)});
  pods_created_.push_back(pod);
  auto r = core_->CreatePod(ns_, pod);
  if (!r.ok()) return r.status().WithContext("creating pod " + spec.name);
  Say("created pod " + spec.name);
  return r;
}

std::string Runner::PodState(const std::string& name) {
  auto pod = core_->GetPod(ns_, name);
  if (!pod.ok()) return pod.status().message();
  std::vector<std::string> parts;
  parts.push_back("phase " + Str(*pod, {"status", "phase"}));
  for (const auto& cond : JsonOrNull(*pod, {"status", "conditions"})) {
    if (Str(cond, {"status"}) == "True") continue;
    std::string s = Str(cond, {"type"}) + "=False";
    if (!Str(cond, {"reason"}).empty()) s += " (" + Str(cond, {"reason"}) + ")";
    if (!Str(cond, {"message"}).empty()) s += ": " + Str(cond, {"message"});
    parts.push_back(s);
  }
  for (const auto& cs : JsonOrNull(*pod, {"status", "containerStatuses"})) {
    std::string reason = Str(cs, {"state", "waiting", "reason"});
    if (!reason.empty()) {
      parts.push_back("container " + Str(cs, {"name"}) + " waiting: " + reason + " " +
                      Str(cs, {"state", "waiting", "message"}));
    }
  }
  auto events = core_->ListEvents(ns_, "involvedObject.name=" + name);
  if (events.ok()) {
    for (const auto& e : *events) {
      if (Str(e, {"type"}) != "Warning") continue;
      if (Join(parts).find(Str(e, {"message"})) != std::string::npos) continue;  // said already
      parts.push_back("event " + Str(e, {"reason"}) + ": " + Str(e, {"message"}));
    }
  }
  return Join(parts, "; ");
}

Expected<Json> Runner::WaitRunning(const std::string& name) {
  Say("waiting for pod " + name + " to run");
  return Poll<Json>(
      "pod " + name + " to run", opt_.timeout,
      [&]() -> Expected<std::optional<Json>> {
        auto pod = core_->GetPod(ns_, name);
        if (!pod.ok()) return pod.status();
        std::string phase = Str(*pod, {"status", "phase"});
        if (phase == "Failed" || phase == "Succeeded") {
          return FailedPrecondition("pod " + name + " ended (" + phase + "): " + PodState(name));
        }
        bool ready = phase == "Running";
        for (const auto& cs : JsonOrNull(*pod, {"status", "containerStatuses"})) {
          if (!cs.value("ready", false)) ready = false;
        }
        if (ready) return std::optional<Json>(*pod);
        // The kubelet could not prepare the claim: the driver's answer is the cause.
        auto events = core_->ListEvents(ns_, "involvedObject.name=" + name);
        if (events.ok()) {
          for (const auto& e : *events) {
            if (Str(e, {"reason"}) == "FailedPrepareDynamicResources") {
              return FailedPrecondition("pod " + name + " cannot start: the kubelet could not " +
                                        "prepare its claim: " + Str(e, {"message"}));
            }
          }
        }
        return std::optional<Json>();
      },
      [&] { return "pod state: " + PodState(name); });
}

Expected<std::string> Runner::WaitUnschedulable(const std::string& name) {
  Say("waiting for the scheduler's verdict on pod " + name);
  return Poll<std::string>(
      "the scheduler to report pod " + name + " Unschedulable", opt_.timeout,
      [&]() -> Expected<std::optional<std::string>> {
        auto pod = core_->GetPod(ns_, name);
        if (!pod.ok()) return pod.status();
        std::string node = Str(*pod, {"spec", "nodeName"});
        if (!node.empty()) {
          return FailedPrecondition("pod " + name + " was scheduled to node " + node +
                                    " although no device should be available for it");
        }
        for (const auto& cond : JsonOrNull(*pod, {"status", "conditions"})) {
          if (Str(cond, {"type"}) == "PodScheduled" && Str(cond, {"status"}) == "False" &&
              Str(cond, {"reason"}) == "Unschedulable") {
            return std::optional<std::string>(Str(cond, {"message"}));
          }
        }
        return std::optional<std::string>();
      },
      [&] { return "pod state: " + PodState(name); });
}

Expected<InspectResult> Runner::WaitInspect(const std::string& pod, const std::string& container) {
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
        return std::optional<InspectResult>(r);
      },
      [&] { return "log so far: " + last.substr(0, 500); });
}

Expected<Json> Runner::PodClaim(const Json& pod) {
  std::string claim;
  for (const auto& s : JsonOrNull(pod, {"status", "resourceClaimStatuses"})) {
    if (Str(s, {"name"}) == kClaimRef) claim = Str(s, {"resourceClaimName"});
  }
  for (const auto& s : JsonOrNull(pod, {"spec", "resourceClaims"})) {
    if (Str(s, {"name"}) == kClaimRef && !Str(s, {"resourceClaimName"}).empty()) {
      claim = Str(s, {"resourceClaimName"});
    }
  }
  if (claim.empty()) return NotFound("pod " + Str(pod, {"metadata", "name"}) + " has no claim");
  return res_->GetObject("resourceclaims", ns_, claim);
}

std::string Runner::PendingClaimDevices(const std::string& pod_name) {
  auto pod = core_->GetPod(ns_, pod_name);
  if (!pod.ok()) return "";
  auto claim = PodClaim(*pod);
  if (!claim.ok()) return "";  // not even created: certainly unallocated
  return Join(AllocatedDevices(*claim));
}

std::vector<std::string> Runner::AllocatedDevices(const Json& claim) {
  std::vector<std::string> out;
  for (const auto& r : JsonOrNull(claim, {"status", "allocation", "devices", "results"})) {
    if (Str(r, {"driver"}) == opt_.driver)
      out.push_back(Str(r, {"pool"}) + "/" + Str(r, {"device"}));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Expected<Inventory> Runner::LoadInventory() {
  Inventory inv;
  std::string selector;
  for (const auto& [k, v] : opt_.node_selector)
    selector += (selector.empty() ? "" : ",") + k + "=" + v;
  ASSIGN_OR_RETURN(auto all_nodes, core_->ListNodes(""));
  std::set<std::string> selected;
  if (!selector.empty()) {
    ASSIGN_OR_RETURN(auto sel_nodes, core_->ListNodes(selector));
    for (const auto& n : sel_nodes) selected.insert(Str(n, {"metadata", "name"}));
  }
  for (const auto& n : all_nodes) {
    NodeInfo info;
    info.name = Str(n, {"metadata", "name"});
    info.raw = n;
    info.selected = selector.empty() || selected.count(info.name) > 0;
    for (const auto& cond : JsonOrNull(n, {"status", "conditions"})) {
      if (Str(cond, {"type"}) == "Ready") info.ready = Str(cond, {"status"}) == "True";
    }
    inv.nodes[info.name] = info;
  }
  ASSIGN_OR_RETURN(auto slices, res_->ListResourceSlices("", "spec.driver=" + opt_.driver));
  for (const auto& s : slices.items) {
    std::string pool_name = Str(s, {"spec", "pool", "name"});
    PoolInfo& p = inv.pools[pool_name];
    p.name = pool_name;
    int64_t gen = JsonOrNull(s, {"spec", "pool", "generation"}).is_number()
                      ? JsonOrNull(s, {"spec", "pool", "generation"}).get<int64_t>()
                      : 0;
    int64_t count = JsonOrNull(s, {"spec", "pool", "resourceSliceCount"}).is_number()
                        ? JsonOrNull(s, {"spec", "pool", "resourceSliceCount"}).get<int64_t>()
                        : 0;
    if (gen > p.generation) {
      p.generation = gen;
      p.slices_at_generation = 0;
      p.devices.clear();
      p.expected_slices = count;
    }
    if (gen < p.generation) continue;
    ++p.slices_at_generation;
    if (!Str(s, {"spec", "nodeName"}).empty()) p.node = Str(s, {"spec", "nodeName"});
    for (const auto& d : JsonOrNull(s, {"spec", "devices"})) {
      p.devices.push_back({pool_name, Str(d, {"name"}), d});
    }
  }
  for (const auto& [name, p] : inv.pools) {
    auto n = inv.nodes.find(p.node);
    if (!p.complete() || n == inv.nodes.end() || !n->second.ready || !n->second.selected) continue;
    auto& list = inv.usable_by_node[p.node];
    list.insert(list.end(), p.devices.begin(), p.devices.end());
  }
  return inv;
}

Status Runner::ResetNamespace() {
  auto pods = core_->ListPods(ns_);
  if (!pods.ok()) return pods.status();
  if (pods->empty()) return Status::Ok();
  for (const auto& p : *pods) {
    RETURN_IF_ERROR(core_->DeletePod(ns_, Str(p, {"metadata", "name"}), 1));
  }
  Say("deleting " + std::to_string(pods->size()) + " pod(s) and their claims");
  auto gone = Poll<bool>("the probe's pods to be deleted", opt_.cleanup_timeout,
                         [&]() -> Expected<std::optional<bool>> {
                           auto l = core_->ListPods(ns_);
                           if (!l.ok()) return l.status();
                           return l->empty() ? std::optional<bool>(true) : std::nullopt;
                         });
  if (!gone.ok()) return gone.status();
  auto claims = res_->ListObjects("resourceclaims", ns_);
  if (!claims.ok()) return claims.status();
  for (const auto& cl : *claims) {
    RETURN_IF_ERROR(res_->DeleteObject("resourceclaims", ns_, Str(cl, {"metadata", "name"})));
  }
  auto claims_gone = Poll<bool>("the probe's ResourceClaims to be deleted", opt_.cleanup_timeout,
                                [&]() -> Expected<std::optional<bool>> {
                                  auto l = res_->ListObjects("resourceclaims", ns_);
                                  if (!l.ok()) return l.status();
                                  return l->empty() ? std::optional<bool>(true) : std::nullopt;
                                });
  return claims_gone.ok() ? Status::Ok() : claims_gone.status();
}

// Fails `c` (returns false) when no node offers complete pools of the driver: pods could only time
// out, so say why at once.
bool Runner::RequireDevices(CheckResult& c) {
  auto inv = LoadInventory();
  if (!inv.ok()) {
    Fail(c, inv.status().message());
    return false;
  }
  if (inv->usable_by_node.empty()) {
    Fail(c, inv->pools.empty() ? "no ResourceSlices of driver " + opt_.driver +
                                     " are published (is the driver's kubelet plugin running?)"
                               : "no complete ResourceSlice pool of driver " + opt_.driver +
                                     " on a Ready (selected) node");
    return false;
  }
  return true;
}

// --- dra_support ---------------------------------------------------------------------------------

void Runner::DraSupport(CheckResult& c) {
  c.ran.push_back("GET /apis/resource.k8s.io and /apis/resource.k8s.io/v1 (discovery)");
  if (!dra_api_.ok()) return Fail(c, dra_api_.message());
  auto version = res_->Version();
  if (*version != "v1") {
    return Fail(c, "resource.k8s.io/v1 is not served (newest served version: " + *version + ")");
  }
  auto served = res_->ServedResources();
  if (!served.ok()) return Fail(c, served.status().message());
  c.observed.push_back("resource.k8s.io/v1 serves: " + Join(*served, ", "));
  std::vector<std::string> missing;
  for (const char* r :
       {"deviceclasses", "resourceclaims", "resourceclaimtemplates", "resourceslices"}) {
    if (std::find(served->begin(), served->end(), r) == served->end()) missing.push_back(r);
  }
  if (!missing.empty()) return Fail(c, "resource.k8s.io/v1 does not serve " + Join(missing, ", "));

  c.ran.push_back("list ResourceSlices with spec.driver=" + opt_.driver + " and the Nodes");
  auto inv = LoadInventory();
  if (!inv.ok()) return Fail(c, inv.status().message());
  if (inv->pools.empty()) {
    return Fail(c, "no ResourceSlices of driver " + opt_.driver +
                       " are published (is the driver's kubelet plugin running?)");
  }
  for (const auto& [name, p] : inv->pools) {
    auto n = inv->nodes.find(p.node);
    std::string node_state = p.node.empty() ? "no nodeName"
                             : n == inv->nodes.end()
                                 ? "node " + p.node + " does not exist"
                                 : "node " + p.node + (n->second.ready ? " Ready" : " NotReady") +
                                       (n->second.selected ? "" : " (not selected)");
    c.observed.push_back("pool " + name + ": generation " + std::to_string(p.generation) + ", " +
                         std::to_string(p.slices_at_generation) + "/" +
                         std::to_string(p.expected_slices) + " slices (" +
                         (p.complete() ? "complete" : "INCOMPLETE") + "), " +
                         std::to_string(p.devices.size()) + " devices, " + node_state);
  }
  if (inv->usable_by_node.empty()) {
    return Fail(c, "no complete ResourceSlice pool of driver " + opt_.driver +
                       " on a Ready (selected) node: " + c.observed.back());
  }

  auto tmpl = CreateObject(c, "resourceclaimtemplates",
                           ClaimTemplateManifest("dra-support", PlainClass(), 1, ns_));
  if (!tmpl.ok()) return Fail(c, tmpl.status().message());
  auto pod = CreatePod(c, Pod("dra-support", {{"main", true}}, "dra-support", ""));
  if (!pod.ok()) return Fail(c, pod.status().message());
  c.ran.push_back("a pod with a ResourceClaimTemplate (class " + PlainClass() + ", 1 device)");
  auto running = WaitRunning("dra-support");
  if (!running.ok()) return Fail(c, running.status().message());
  auto claim = PodClaim(*running);
  if (!claim.ok()) return Fail(c, claim.status().message());
  auto devices = AllocatedDevices(*claim);
  std::string claim_name = Str(*claim, {"metadata", "name"});
  bool reserved = false;
  for (const auto& r : JsonOrNull(*claim, {"status", "reservedFor"})) {
    if (Str(r, {"uid"}) == Str(*running, {"metadata", "uid"})) reserved = true;
  }
  c.observed.push_back("pod dra-support Running on node " + Str(*running, {"spec", "nodeName"}) +
                       "; claim " + claim_name + ": allocated [" + Join(devices) + "], " +
                       (reserved ? "reserved for the pod" : "NOT reserved for the pod"));
  if (devices.empty())
    return Fail(c, "claim " + claim_name +
                       " of running pod dra-support has no allocation of driver " + opt_.driver);
  if (!reserved) return Fail(c, "claim " + claim_name + " is not reserved for pod dra-support");
  auto out = WaitInspect("dra-support", "main");
  if (!out.ok()) return Fail(c, out.status().message());
  c.observed.push_back(
      "inside the container: ACCEL_VISIBLE_DEVICES=" + out->accel_env["ACCEL_VISIBLE_DEVICES"] +
      ", device nodes [" + Join(out->accelerator_devices) + "] (inspect: " + out->tool + ")");
  const std::string dev = devices[0].substr(devices[0].find('/') + 1);
  if (Visible(*out) != dev || out->accelerator_devices.empty()) {
    return Fail(c, "the container of pod dra-support, allocated " + dev +
                       ", sees ACCEL_VISIBLE_DEVICES=\"" + Visible(*out) + "\" and device nodes [" +
                       Join(out->accelerator_devices) + "]: the driver's injection is missing");
  }
  c.status = CheckStatus::kPass;
  c.message = "resource.k8s.io/v1 served; " + std::to_string(inv->usable_by_node.size()) +
              " node(s) with complete pools; claim allocated and reserved";
}

// --- driver_runtime_management -------------------------------------------------------------------

void Runner::DriverRuntime(CheckResult& c) {
  if (!dra_api_.ok()) return Fail(c, dra_api_.message());
  c.ran.push_back(
      "compare device attributes driverVersion, containerRuntime, containerRuntimeVersion per node "
      "with Node.status.nodeInfo");
  auto inv = LoadInventory();
  if (!inv.ok()) return Fail(c, inv.status().message());
  if (inv->usable_by_node.empty()) {
    return Fail(c, "no node with a complete ResourceSlice pool of driver " + opt_.driver +
                       " (are the driver's slices published?)");
  }
  std::vector<std::string> warnings;
  std::string max_version;
  std::map<std::string, std::string> node_version;
  for (const auto& [node, devices] : inv->usable_by_node) {
    std::map<std::string, std::set<std::string>> values;
    std::vector<std::string> without_driver_version;
    for (const auto& d : devices) {
      for (const char* a : {"driverVersion", "containerRuntime", "containerRuntimeVersion"}) {
        std::string v = Attr(d.raw, opt_.driver, a);
        if (!v.empty()) values[a].insert(v);
        if (v.empty() && std::string(a) == "driverVersion")
          without_driver_version.push_back(d.name);
      }
    }
    const Json& info = JsonOrNull(inv->nodes[node].raw, {"status", "nodeInfo"});
    std::string node_runtime = Str(info, {"containerRuntimeVersion"});
    std::string line = "node " + node + ": " + std::to_string(devices.size()) + " devices";
    for (const char* a : {"driverVersion", "containerRuntime", "containerRuntimeVersion"}) {
      auto it = values.find(a);
      std::vector<std::string> vs;
      if (it != values.end()) vs.assign(it->second.begin(), it->second.end());
      line += ", " + std::string(a) + "=" + (vs.empty() ? "(missing)" : Join(vs, "|"));
    }
    line += "; nodeInfo.containerRuntimeVersion=" + node_runtime +
            ", kubeletVersion=" + Str(info, {"kubeletVersion"});
    c.observed.push_back(line);
    if (!without_driver_version.empty()) {
      return Fail(c, "devices " + Join(without_driver_version) + " on node " + node +
                         " publish no driverVersion attribute");
    }
    for (const auto& [a, vs] : values) {
      if (vs.size() > 1) {
        return Fail(c, "devices on node " + node + " disagree on " + a + ": " +
                           Join(std::vector<std::string>(vs.begin(), vs.end()), " vs "));
      }
    }
    auto sep = node_runtime.find("://");
    if (sep == std::string::npos) {
      return Fail(c, "node " + node + " reports containerRuntimeVersion \"" + node_runtime +
                         "\" (expected <runtime>://<version>)");
    }
    std::string rt_name = node_runtime.substr(0, sep), rt_version = node_runtime.substr(sep + 3);
    if (values.count("containerRuntime") == 0 || values.count("containerRuntimeVersion") == 0) {
      warnings.push_back("node " + node +
                         ": devices publish no containerRuntime/containerRuntimeVersion "
                         "attributes; only nodeInfo (" +
                         node_runtime + ") was checked");
    }
    if (values.count("containerRuntime") && *values["containerRuntime"].begin() != rt_name) {
      return Fail(c, "node " + node + ": devices publish containerRuntime " +
                         *values["containerRuntime"].begin() + " but the node runs " + rt_name);
    }
    if (values.count("containerRuntimeVersion") &&
        CompareVersions(*values["containerRuntimeVersion"].begin(), rt_version) != 0) {
      return Fail(c, "node " + node + ": devices publish containerRuntimeVersion " +
                         *values["containerRuntimeVersion"].begin() + " but the node runs " +
                         node_runtime);
    }
    node_version[node] = *values["driverVersion"].begin();
    if (max_version.empty() || CompareVersions(node_version[node], max_version) > 0) {
      max_version = node_version[node];
    }
  }

  // A class requiring the newest published driver version, and one requiring more than any node
  // has.
  std::string min_class = ns_ + "-min-driver", over_class = ns_ + "-over-driver";
  std::string min_cel = MinDriverVersionCel(opt_.driver, max_version);
  auto major = std::to_string(
      std::max(0, std::stoi("0" + max_version.substr(0, max_version.find('.')))) + 1);
  std::string over_version = major + ".0.0";
  std::string over_cel = MinDriverVersionCel(opt_.driver, over_version);
  c.ran.push_back("DeviceClass " + min_class + " with CEL: " + min_cel);
  c.ran.push_back("DeviceClass " + over_class + " with CEL: " + over_cel);
  for (const auto& [name, cel] : {std::pair{min_class, min_cel}, std::pair{over_class, over_cel}}) {
    auto r = CreateObject(c, "deviceclasses",
                          DeviceClassManifest(name, {DriverCel(opt_.driver), cel}, ns_), true);
    if (!r.ok()) return Fail(c, r.status().message());
    std::string t = name == min_class ? "min-driver" : "over-driver";
    auto tr = CreateObject(c, "resourceclaimtemplates", ClaimTemplateManifest(t, name, 1, ns_));
    if (!tr.ok()) return Fail(c, tr.status().message());
    auto p = CreatePod(c, Pod(t, {{"main", true}}, t, ""));
    if (!p.ok()) return Fail(c, p.status().message());
  }
  auto running = WaitRunning("min-driver");
  if (!running.ok())
    return Fail(c,
                "a claim for driverVersion >= " + max_version + ": " + running.status().message());
  auto claim = PodClaim(*running);
  if (!claim.ok()) return Fail(c, claim.status().message());
  auto devices = AllocatedDevices(*claim);
  if (devices.size() != 1)
    return Fail(c, "claim " + Str(*claim, {"metadata", "name"}) + " has " +
                       std::to_string(devices.size()) + " devices of driver " + opt_.driver +
                       ", expected 1");
  std::string pool = devices[0].substr(0, devices[0].find('/'));
  std::string dev = devices[0].substr(devices[0].find('/') + 1);
  std::string published;
  std::string alloc_node = inv->pools[pool].node;
  for (const auto& d : inv->pools[pool].devices) {
    if (d.name == dev) published = Attr(d.raw, opt_.driver, "driverVersion");
  }
  c.observed.push_back("pod min-driver (class " + min_class + ") Running on node " +
                       Str(*running, {"spec", "nodeName"}) + " with device " + devices[0] +
                       " (published driverVersion " + published + ")");
  if (CompareVersions(published, max_version) < 0) {
    return Fail(c, "class " + min_class + " (driverVersion >= " + max_version +
                       ") was allocated device " + devices[0] + " with driverVersion " + published);
  }
  auto out = WaitInspect("min-driver", "main");
  if (!out.ok()) return Fail(c, out.status().message());
  c.observed.push_back("inside the container: driver version " +
                       (out->driver_version.empty() ? "(none)" : out->driver_version) + " from " +
                       out->driver_version_source + " (inspect: " + out->tool + ")");
  if (out->driver_version.empty()) {
    return Fail(c, "a container holding " + devices[0] + " sees no driver version (none of " +
                       std::string(kDriverVersionFile) +
                       ", /proc/driver/nvidia/version, /sys/module/*/version is readable)");
  }
  if (CompareVersions(out->driver_version, published) != 0) {
    return Fail(c, "node " + alloc_node + " publishes driverVersion " + published + " for " + dev +
                       " but the container holding it sees driver version " + out->driver_version +
                       " (from " + out->driver_version_source + ")");
  }
  auto reason = WaitUnschedulable("over-driver");
  if (!reason.ok()) return Fail(c, "class " + over_class + ": " + reason.status().message());
  c.observed.push_back("pod over-driver (class " + over_class +
                       ", driverVersion >= " + over_version + ") stays Pending: " + *reason);
  if (std::string held = PendingClaimDevices("over-driver"); !held.empty()) {
    return Fail(c, "the claim of pending pod over-driver (driverVersion >= " + over_version +
                       ") was allocated " + held);
  }
  c.status = CheckStatus::kPass;
  c.message = "published driver version " + max_version +
              " matches what containers see; CEL minimum-version selection honoured";
  if (!warnings.empty()) c.message += "; WARNING: " + Join(warnings, "; ");
}

// --- gpu_sharing ---------------------------------------------------------------------------------

void Runner::GpuSharing(CheckResult& c) {
  if (!dra_api_.ok()) return Fail(c, dra_api_.message());
  if (!RequireDevices(c)) return;
  const int n = opt_.sharing_pods;
  auto claim =
      CreateObject(c, "resourceclaims",
                   ClaimManifest("time-sliced", PlainClass(), 1,
                                 SharingConfig(opt_.driver, "TimeSlicing", "Short", 0), ns_));
  if (!claim.ok()) return Fail(c, claim.status().message());
  c.ran.push_back("ResourceClaim time-sliced (TimeSlicing, interval Short) shared by " +
                  std::to_string(n) + " pods");
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    names.push_back("shared-" + std::to_string(i));
    auto p = CreatePod(c, Pod(names.back(), {{"main", true}}, "", "time-sliced"));
    if (!p.ok()) return Fail(c, p.status().message());
  }
  std::vector<InspectResult> outs;
  std::set<std::string> nodes;
  for (const auto& name : names) {
    auto running = WaitRunning(name);
    if (!running.ok())
      return Fail(c, "time-sliced claim shared by " + std::to_string(n) +
                         " pods: " + running.status().message());
    nodes.insert(Str(*running, {"spec", "nodeName"}));
    auto out = WaitInspect(name, "main");
    if (!out.ok()) return Fail(c, out.status().message());
    outs.push_back(*out);
  }
  auto got = res_->GetObject("resourceclaims", ns_, "time-sliced");
  if (!got.ok()) return Fail(c, got.status().message());
  auto devices = AllocatedDevices(*got);
  size_t reserved = JsonOrNull(*got, {"status", "reservedFor"}).size();
  c.observed.push_back("claim time-sliced: allocated [" + Join(devices) + "], reserved for " +
                       std::to_string(reserved) + " pods, on node(s) " +
                       Join(std::vector<std::string>(nodes.begin(), nodes.end())));
  if (devices.size() != 1)
    return Fail(c, "claim time-sliced was allocated " + std::to_string(devices.size()) +
                       " devices, expected 1");
  if (reserved != static_cast<size_t>(n))
    return Fail(c, "claim time-sliced is reserved for " + std::to_string(reserved) +
                       " pods, expected " + std::to_string(n));
  for (size_t i = 0; i < outs.size(); ++i) {
    auto& env = outs[i].accel_env;
    std::string strategy, interval, enforced;
    for (const auto& [k, v] : env) {
      if (k.ends_with("_SHARING_STRATEGY")) strategy = v;
      if (k.ends_with("_TIMESLICE_INTERVAL")) interval = v;
      if (k.ends_with("_TIMESLICE_ENFORCED")) enforced = v;
    }
    c.observed.push_back(
        "pod " + names[i] + ": ACCEL_VISIBLE_DEVICES=" + env["ACCEL_VISIBLE_DEVICES"] +
        ", device nodes [" + Join(outs[i].accelerator_devices) + "], strategy " + strategy +
        ", interval " + interval + (enforced.empty() ? "" : ", enforced " + enforced));
    if (strategy != "TimeSlicing" || interval != "Short") {
      return Fail(c, "pod " + names[i] + " sees sharing strategy \"" + strategy + "\" interval \"" +
                         interval + "\", expected TimeSlicing/Short from the claim's config");
    }
    if (env["ACCEL_VISIBLE_DEVICES"].empty() || outs[i].accelerator_devices.empty()) {
      return Fail(c, "pod " + names[i] + " sharing claim time-sliced sees no device");
    }
    if (i > 0 && (env["ACCEL_VISIBLE_DEVICES"] != Visible(outs[0]) ||
                  outs[i].accelerator_devices != outs[0].accelerator_devices)) {
      return Fail(c, "pods " + names[0] + " and " + names[i] +
                         " share claim time-sliced but see different devices (" + Visible(outs[0]) +
                         " vs " + env["ACCEL_VISIBLE_DEVICES"] + ")");
    }
  }
  c.status = CheckStatus::kPass;
  c.message = std::to_string(n) + " pods share device " + devices[0] + " with TimeSlicing";

  // SpacePartitioning: optional (the devices may not support it); reported either way.
  c.ran.push_back("ResourceClaim partitioned (SpacePartitioning, 2 partitions) used by 1 pod");
  auto pclaim =
      CreateObject(c, "resourceclaims",
                   ClaimManifest("partitioned", PlainClass(), 1,
                                 SharingConfig(opt_.driver, "SpacePartitioning", "", 2), ns_));
  if (!pclaim.ok()) return Fail(c, pclaim.status().message());
  auto pp = CreatePod(c, Pod("partitioned", {{"main", true}}, "", "partitioned"));
  if (!pp.ok()) return Fail(c, pp.status().message());
  auto prun = WaitRunning("partitioned");
  if (!prun.ok()) {
    c.observed.push_back("SpacePartitioning not available: " + prun.status().message());
    c.message += "; SpacePartitioning not available on these devices";
    return;
  }
  auto pout = WaitInspect("partitioned", "main");
  if (!pout.ok()) return Fail(c, pout.status().message());
  std::string count;
  for (const auto& [k, v] : pout->accel_env) {
    if (k.ends_with("_PARTITION_COUNT")) count = v;
  }
  c.observed.push_back(
      "pod partitioned: ACCEL_VISIBLE_DEVICES=" + pout->accel_env["ACCEL_VISIBLE_DEVICES"] +
      ", partition count " + (count.empty() ? "(missing)" : count));
  if (count != "2") {
    return Fail(c, "pod partitioned (SpacePartitioning, 2 partitions) sees partition count \"" +
                       count + "\"");
  }
  c.message += "; SpacePartitioning partition count visible";
}

// --- secure_accelerator_access -------------------------------------------------------------------

void Runner::SecureAccess(CheckResult& c) {
  if (!dra_api_.ok()) return Fail(c, dra_api_.message());
  if (!RequireDevices(c)) return;
  auto tmpl = CreateObject(c, "resourceclaimtemplates",
                           ClaimTemplateManifest("one-device", PlainClass(), 1, ns_));
  if (!tmpl.ok()) return Fail(c, tmpl.status().message());
  c.ran.push_back(
      "pod holder: container with-claim references a 1-device claim, container without-claim does "
      "not");
  auto p = CreatePod(
      c, Pod("holder", {{"with-claim", true}, {"without-claim", false}}, "one-device", ""));
  if (!p.ok()) return Fail(c, p.status().message());
  auto holder = WaitRunning("holder");
  if (!holder.ok()) return Fail(c, holder.status().message());
  std::string node = Str(*holder, {"spec", "nodeName"});
  auto inv = LoadInventory();
  if (!inv.ok()) return Fail(c, inv.status().message());
  size_t node_devices = inv->usable_by_node[node].size();

  c.ran.push_back("pod no-claim without any claim on node " + node);
  auto nc = PodSpec(Pod("no-claim", {{"main", false}}, "", ""));
  nc.node_selector = OnNode(node);
  if (auto r = CreatePod(c, nc); !r.ok()) return Fail(c, r.status().message());
  bool two = node_devices >= 2;
  if (two) {
    c.ran.push_back("pod second with another 1-device claim on node " + node);
    auto s = Pod("second", {{"main", true}}, "one-device", "");
    s.node_selector = OnNode(node);
    if (auto r = CreatePod(c, s); !r.ok()) return Fail(c, r.status().message());
  }

  struct Seen {
    std::string pod, container;
    std::vector<std::string> allocated;  // device names
    InspectResult out;
  };
  std::vector<Seen> seen;
  auto claim_devices = [&](const Json& pod) -> Expected<std::vector<std::string>> {
    ASSIGN_OR_RETURN(Json cl, PodClaim(pod));
    std::vector<std::string> names;
    for (const auto& d : AllocatedDevices(cl)) names.push_back(d.substr(d.find('/') + 1));
    return names;
  };
  auto hd = claim_devices(*holder);
  if (!hd.ok()) return Fail(c, hd.status().message());
  for (const char* ctr : {"with-claim", "without-claim"}) {
    auto out = WaitInspect("holder", ctr);
    if (!out.ok()) return Fail(c, out.status().message());
    seen.push_back(
        {"holder", ctr, std::string(ctr) == "with-claim" ? *hd : std::vector<std::string>{}, *out});
  }
  if (auto r = WaitRunning("no-claim"); !r.ok()) return Fail(c, r.status().message());
  if (auto out = WaitInspect("no-claim", "main"); out.ok()) {
    seen.push_back({"no-claim", "main", {}, *out});
  } else {
    return Fail(c, out.status().message());
  }
  if (two) {
    auto second = WaitRunning("second");
    if (!second.ok()) return Fail(c, second.status().message());
    auto sd = claim_devices(*second);
    if (!sd.ok()) return Fail(c, sd.status().message());
    auto out = WaitInspect("second", "main");
    if (!out.ok()) return Fail(c, out.status().message());
    seen.push_back({"second", "main", *sd, *out});
  }

  for (const auto& s : seen) {
    std::vector<std::string> env_devices;
    for (const auto& [k, v] : s.out.accel_env) {
      if (k.starts_with("ACCEL_DEVICE_") && k.find("_RESOURCE_CLAIM") == std::string::npos &&
          k.find("_SHARING_STRATEGY") == std::string::npos &&
          k.find("_TIMESLICE_") == std::string::npos &&
          k.find("_PARTITION_COUNT") == std::string::npos) {
        env_devices.push_back(v);
      }
    }
    std::sort(env_devices.begin(), env_devices.end());
    std::string who =
        "container " + s.container + " of pod " + s.pod +
        (s.allocated.empty() ? " (no claim)" : " (claim for " + Join(s.allocated) + ")");
    c.observed.push_back(who + ": device nodes [" + Join(s.out.device_nodes) +
                         "], accelerator nodes [" + Join(s.out.accelerator_devices) +
                         "], ACCEL_VISIBLE_DEVICES=" + Visible(s.out) + ", " +
                         std::to_string(s.out.accel_env.size()) + " ACCEL_* variables");
    if (s.allocated.empty()) {
      if (!s.out.device_nodes.empty() || !s.out.accel_env.empty()) {
        return Fail(c, who + " sees device nodes [" + Join(s.out.device_nodes) + "] and " +
                           std::to_string(s.out.accel_env.size()) +
                           " ACCEL_* variables; expected none");
      }
      continue;
    }
    // Devices it is told about: ACCEL_DEVICE_<KEY> values and ACCEL_VISIBLE_DEVICES entries.
    std::set<std::string> named(env_devices.begin(), env_devices.end());
    std::stringstream visible(Visible(s.out));
    for (std::string item; std::getline(visible, item, ',');) {
      if (!item.empty()) named.insert(item);
    }
    std::vector<std::string> extra;
    std::set_difference(named.begin(), named.end(), s.allocated.begin(), s.allocated.end(),
                        std::back_inserter(extra));
    if (!extra.empty()) {
      return Fail(c, who + " sees extra device(s) " + Join(extra) +
                         " (ACCEL_VISIBLE_DEVICES=" + Visible(s.out) + ", device nodes [" +
                         Join(s.out.accelerator_devices) + "])");
    }
    if (named != std::set<std::string>(s.allocated.begin(), s.allocated.end())) {
      return Fail(c, who + " sees ACCEL_VISIBLE_DEVICES=" + Visible(s.out) + ", expected " +
                         Join(s.allocated));
    }
    const auto per_device = PerDeviceNodes(s.out.accelerator_devices);
    if (per_device.size() > s.allocated.size()) {
      return Fail(c, who + " sees extra device node(s): " + std::to_string(per_device.size()) +
                         " accelerator device nodes [" + Join(s.out.accelerator_devices) +
                         "] for " + std::to_string(s.allocated.size()) + " allocated device(s)");
    }
    if (per_device.size() < s.allocated.size()) {
      return Fail(c, who + " sees only " + std::to_string(per_device.size()) +
                         " accelerator device nodes [" + Join(s.out.accelerator_devices) +
                         "] for " + std::to_string(s.allocated.size()) + " allocated device(s)");
    }
  }
  if (two) {
    const auto& a = seen[0];
    const auto& b = seen.back();
    std::vector<std::string> common;
    const auto na = PerDeviceNodes(a.out.accelerator_devices);
    const auto nb = PerDeviceNodes(b.out.accelerator_devices);
    std::set_intersection(na.begin(), na.end(), nb.begin(), nb.end(), std::back_inserter(common));
    if (!common.empty() || a.allocated == b.allocated) {
      return Fail(c, "pods holder and second, each with its own claim, both see device node(s) [" +
                         Join(common) + "] (devices " + Join(a.allocated) + " / " +
                         Join(b.allocated) + ")");
    }
    c.observed.push_back("pods holder and second see disjoint devices: " + Join(a.allocated) +
                         " / " + Join(b.allocated));
  } else {
    c.observed.push_back("node " + node + " has only " + std::to_string(node_devices) +
                         " device(s): the two-pod isolation case was not run");
  }

  // Capacity: take every remaining device of the node, then one more pod must stay Pending.
  size_t used = 0;
  auto all_claims = res_->ListObjects("resourceclaims", "");
  if (!all_claims.ok()) return Fail(c, all_claims.status().message());
  std::set<std::string> node_devs;
  for (const auto& d : inv->usable_by_node[node]) node_devs.insert(d.pool + "/" + d.name);
  for (const auto& cl : *all_claims) {
    for (const auto& d : AllocatedDevices(cl)) used += node_devs.count(d);
  }
  size_t free_devices = node_devs.size() > used ? node_devs.size() - used : 0;
  c.observed.push_back("node " + node + ": " + std::to_string(node_devs.size()) + " devices, " +
                       std::to_string(used) + " allocated, " + std::to_string(free_devices) +
                       " free");
  if (free_devices > 0) {
    c.ran.push_back("pod filler takes the remaining " + std::to_string(free_devices) +
                    " device(s) of node " + node);
    auto ft = CreateObject(
        c, "resourceclaimtemplates",
        ClaimTemplateManifest("filler", PlainClass(), static_cast<int>(free_devices), ns_));
    if (!ft.ok()) return Fail(c, ft.status().message());
    auto f = Pod("filler", {{"main", true}}, "filler", "");
    f.node_selector = OnNode(node);
    if (auto r = CreatePod(c, f); !r.ok()) return Fail(c, r.status().message());
    if (auto r = WaitRunning("filler"); !r.ok()) return Fail(c, r.status().message());
  }
  c.ran.push_back("pod extra asks for one more device on node " + node);
  auto e = Pod("extra", {{"main", true}}, "one-device", "");
  e.node_selector = OnNode(node);
  if (auto r = CreatePod(c, e); !r.ok()) return Fail(c, r.status().message());
  auto reason = WaitUnschedulable("extra");
  if (!reason.ok())
    return Fail(c,
                "with every device of node " + node + " allocated: " + reason.status().message());
  c.observed.push_back("pod extra stays Pending: " + *reason);
  if (std::string held = PendingClaimDevices("extra"); !held.empty()) {
    return Fail(c, "the claim of pending pod extra was allocated " + held);
  }

  size_t risky = 0;
  for (const auto& pod : pods_created_) {
    std::string why;
    if (PodUsesPrivilegeOrHostPath(pod, &why)) ++risky;
  }
  c.observed.push_back(std::to_string(pods_created_.size()) + " probe pods so far: " +
                       (risky == 0 ? "no privileged mode, no hostPath volumes used"
                                   : std::to_string(risky) + " used privilege or hostPath"));
  c.status = CheckStatus::kPass;
  c.message =
      "claims see exactly their devices, pods and containers without claims see none, capacity "
      "enforced; no privileged, no hostPath used";
}

void Runner::RunChecks() {
  std::set<std::string> only(opt_.only.begin(), opt_.only.end());
  bool interrupted = false;
  for (std::string_view id : kCheckIds) {
    if (!only.empty() && only.count(std::string(id)) == 0) continue;
    CheckResult c;
    c.id = std::string(id);
    auto t0 = Clock::now();
    if (interrupted) {
      c.status = CheckStatus::kSkip;
      c.message = "not run: the probe was interrupted";
      report_->checks.push_back(c);
      continue;
    }
    Say("check " + c.id + ": start");
    try {
      if (!base_class_manifest_.title.empty()) {
        c.ran.push_back("DeviceClass " + base_class_ + " with CEL: " + DriverCel(opt_.driver));
        c.manifests.push_back(base_class_manifest_);
      } else if (!opt_.device_class.empty()) {
        c.ran.push_back("existing DeviceClass " + opt_.device_class + " (--device-class)");
      }
      if (c.status != CheckStatus::kFail) {
        if (id == "dra_support") DraSupport(c);
        if (id == "driver_runtime_management") DriverRuntime(c);
        if (id == "gpu_sharing") GpuSharing(c);
        if (id == "secure_accelerator_access") SecureAccess(c);
      }
      Status st = ResetNamespace();
      if (!st.ok()) {
        if (c.status == CheckStatus::kPass)
          Fail(c, "releasing the check's pods and claims: " + st.message());
        Say("warning: " + st.message());
      }
    } catch (const Interrupted&) {
      interrupted = true;
      report_->interrupted = true;
      Fail(c, "interrupted by a signal before the check finished");
    }
    c.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    Say("check " + c.id + ": " + std::string(CheckStatusName(c.status)) +
        (c.message.empty() ? "" : " - " + c.message));
    report_->checks.push_back(std::move(c));
  }
}

void Runner::Cleanup() {
  if (core_ == nullptr) return;
  // Runs after an interrupt too: never throws Interrupted (its own loop, no Poll/Nap).
  auto deadline = Clock::now() + opt_.cleanup_timeout;
  if (!ns_.empty()) {
    auto pods = core_->ListPods(ns_);
    if (pods.ok()) {
      for (const auto& p : *pods) (void)core_->DeletePod(ns_, Str(p, {"metadata", "name"}), 1);
    }
    Status st = core_->DeleteNamespace(ns_);
    if (!st.ok())
      report_->cleanup.push_back("deleting namespace " + ns_ + " failed: " + st.message());
  }
  for (const auto& cls : classes_) {
    Status st = res_->DeleteObject("deviceclasses", "", cls);
    report_->cleanup.push_back(st.ok()
                                   ? "deleted DeviceClass " + cls
                                   : "deleting DeviceClass " + cls + " failed: " + st.message());
  }
  if (ns_.empty()) return;
  Say("cleaning up: waiting for namespace " + ns_ + " to be deleted");
  for (;;) {
    auto got = core_->GetNamespace(ns_);
    if (!got.ok() && got.status().code() == Code::kNotFound) {
      report_->cleanup.push_back("deleted namespace " + ns_ + " (its pods, claims and templates)");
      Say("namespace " + ns_ + " deleted");
      return;
    }
    if (Clock::now() >= deadline) {
      report_->cleanup.push_back("namespace " + ns_ + " still exists after " +
                                 std::to_string(opt_.cleanup_timeout.count()) +
                                 " s (deletion requested)");
      Say("warning: namespace " + ns_ + " is still being deleted");
      return;
    }
    std::this_thread::sleep_for(milliseconds(250));
  }
}

}  // namespace

Status ValidateRunOptions(const RunOptions& o) {
  for (const auto& id : o.only) {
    if (std::find(std::begin(kCheckIds), std::end(kCheckIds), id) == std::end(kCheckIds)) {
      std::vector<std::string> ids(std::begin(kCheckIds), std::end(kCheckIds));
      return InvalidArgument("--only: unknown check \"" + id + "\" (known: " + Join(ids, ", ") +
                             ")");
    }
  }
  if (o.sharing_pods < 2 || o.sharing_pods > 16) {
    return InvalidArgument("--sharing-pods must be 2..16, got " + std::to_string(o.sharing_pods));
  }
  if (o.image.empty()) return InvalidArgument("--image must not be empty");
  if (o.timeout.count() <= 0) return InvalidArgument("--timeout must be positive");
  if (o.driver.empty()) return InvalidArgument("--driver must not be empty");
  return Status::Ok();
}

Status RunProbe(const RunOptions& options, const std::atomic<bool>* stop,
                const ProgressFn& progress, Report* report) {
  RETURN_IF_ERROR(ValidateRunOptions(options));
  auto t0 = Clock::now();
  report->probe_version = options.probe_version;
  report->driver = options.driver;
  report->started_at = NowRfc3339();
  Runner runner(options, stop, progress, report);
  Status st;
  try {
    st = runner.Setup();
    if (st.ok()) runner.RunChecks();
  } catch (const Interrupted&) {
    report->interrupted = true;
    st = FailedPrecondition("interrupted by a signal during setup");
  }
  runner.Cleanup();
  report->seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return st;
}

}  // namespace accel_dra::probe
