#pragma once
// The probe's cluster session: the plumbing between the checks and the apiserver. Every object the
// probe creates, every wait and the clean-up go through it.
//
// Promises:
//  - Open() connects (kubeconfig, /version, resource.k8s.io discovery), creates the run's namespace
//    <prefix>-<5 random characters>, waits for its default ServiceAccount and, unless the options
//    name an existing DeviceClass, creates the DeviceClass <namespace> selecting the driver's
//    devices (only when resource.k8s.io is served).
//  - What it creates carries the label accel-dra.dev/probe=<namespace>; namespaced objects live in
//    that namespace, DeviceClasses are remembered by name. Create*() record each object's manifest
//    in the check's result, so the evidence shows exactly what was sent.
//  - ResetNamespace() deletes the namespace's pods, then its ResourceClaims, and waits until both
//    are gone, so the next check starts with every device free.
//  - Close() deletes everything it created: the pods, the namespace (with its claims and templates)
//    and the DeviceClasses, then waits until the namespace is gone. It ignores the stop flag, is
//    bounded by cleanup_timeout, runs once (the destructor runs it when nobody did) and returns
//    what it removed or left, one line each.
//  - While a check records (RecordInto), the reads and waits add the raw outputs they saw to its
//    result (evidence.h): the slices, each claim's status, each inspect log, each scheduler
//    verdict.
//  - Waits poll every 500 ms and are bounded by `timeout` (deletions: `cleanup_timeout`); at the
//    deadline they return DeadlineExceeded naming what was awaited and the last state seen. When
//    the stop flag is set a wait returns an error within ~100 ms and interrupted() becomes true:
//    callers return at once, and the orchestration reports the interruption.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "accel_dra/common/status.h"
#include "accel_dra/kube/client.h"
#include "accel_dra/probe/cluster_inventory.h"
#include "accel_dra/probe/inspect.h"
#include "accel_dra/probe/manifests.h"
#include "accel_dra/probe/report.h"
#include "accel_dra/probe/runner.h"

namespace accel_dra::probe {

class ClusterSession {
 public:
  using Clock = std::chrono::steady_clock;

  // `options`, `stop` and `progress` must outlive the session; `stop` may be null.
  ClusterSession(const RunOptions& options, const std::atomic<bool>* stop,
                 const ProgressFn& progress);
  ~ClusterSession();
  ClusterSession(const ClusterSession&) = delete;
  ClusterSession& operator=(const ClusterSession&) = delete;

  Status Open();
  // What Close() removed or could not remove (empty when Open() never connected).
  std::vector<std::string> Close();

  // --- what Open() found ------------------------------------------------------------------------
  const RunOptions& options() const { return opt_; }
  const std::string& driver() const { return opt_.driver; }
  const std::string& server_version() const { return server_version_; }  // gitVersion
  const std::string& namespace_name() const { return ns_; }              // set before it is created
  // resource.k8s.io discovery: the newest served version, or why there is none.
  const Expected<std::string>& dra_version() const { return dra_version_; }
  // The DeviceClass plain claims use; its manifest when the session created it (title "" else).
  const std::string& plain_class() const { return base_class_; }
  const Manifest& plain_class_manifest() const { return base_class_manifest_; }

  // --- progress and interruption
  // ------------------------------------------------------------------ A progress line, prefixed
  // with the seconds since the session started ("[  12.3s] ").
  void Say(const std::string& msg) const;
  bool interrupted() const { return interrupted_; }

  // The check whose result gets the raw outputs of the reads and waits (nullptr: none).
  void RecordInto(CheckResult* c) { record_ = c; }

  // --- objects
  // ------------------------------------------------------------------------------------ A
  // resource.k8s.io object (plural `resource`), namespaced or a DeviceClass.
  Expected<nlohmann::json> CreateObject(CheckResult& c, const std::string& resource,
                                        const nlohmann::json& obj, bool cluster_scoped = false);
  Expected<nlohmann::json> CreatePod(CheckResult& c, const PodSpec& spec);
  // A pod of the run's image, pull policy, node selector and label; `tmpl` or `claim` names its
  // claim source (or neither).
  PodSpec NewPod(const std::string& name, std::vector<std::pair<std::string, bool>> containers,
                 const std::string& tmpl, const std::string& claim) const;
  // The node selector plus kubernetes.io/hostname=<node>.
  std::map<std::string, std::string> OnNode(const std::string& node) const;
  // Every pod manifest created so far (for the privilege / hostPath audit).
  const std::vector<nlohmann::json>& pods_created() const { return pods_created_; }

  // --- reading
  // ------------------------------------------------------------------------------------
  Expected<ClusterInventory> LoadInventory();
  Expected<std::vector<std::string>> ServedDraResources();
  Expected<nlohmann::json> GetClaim(const std::string& name);
  Expected<std::vector<nlohmann::json>> ListClaimsEverywhere();
  // The pod's ResourceClaim (kClaimRef), from its status or spec; NotFound when it has none.
  Expected<nlohmann::json> PodClaim(const nlohmann::json& pod);
  // The claim's allocated devices of our driver, "pool/device", sorted.
  std::vector<std::string> AllocatedDevices(const nlohmann::json& claim) const;
  // The devices allocated to the claim of a pod that should be pending ("" when none).
  std::string PendingClaimDevices(const std::string& pod_name);

  // --- waits
  // -------------------------------------------------------------------------------------- Until
  // the pod runs with every container ready; fails early when it ended or the kubelet could not
  // prepare its claim (the driver's answer is the message).
  Expected<nlohmann::json> WaitRunning(const std::string& name);
  // Until the scheduler reports the pod Unschedulable: its message. Fails when it was scheduled.
  Expected<std::string> WaitUnschedulable(const std::string& name);
  // Until the container's log holds complete RESULT output (DONE=true).
  Expected<InspectResult> WaitInspect(const std::string& pod, const std::string& container);

  Status ResetNamespace();

 private:
  // Polls `f` (a value when done, nullopt to continue, or an error) every 500 ms until `timeout`;
  // Unavailable and NotFound count as "not yet".
  template <typename T>
  Expected<T> Poll(const std::string& what, std::chrono::seconds timeout,
                   const std::function<Expected<std::optional<T>>()>& f,
                   const std::function<std::string()>& state = nullptr);
  // Whether the stop flag is (or was) set; sets interrupted().
  bool StopRequested();
  // Sleeps `d` in 50 ms steps; false (and interrupted()) when the stop flag was set.
  bool Nap(std::chrono::milliseconds d);
  Status WaitGone(const std::string& what,
                  const std::function<Expected<std::vector<nlohmann::json>>()>& list);
  Status CreateNamespace();
  Status CreatePlainClass();
  std::string PodState(const std::string& name);
  // The reason of a FailedPrepareDynamicResources event of the pod, "" when there is none.
  std::string PrepareFailure(const std::string& name);
  std::vector<std::string> DeleteCreated();
  void WaitNamespaceGone(Clock::time_point deadline, std::vector<std::string>& cleanup);

  const RunOptions& opt_;
  const std::atomic<bool>* stop_;
  const ProgressFn& progress_;
  Clock::time_point start_ = Clock::now();
  bool interrupted_ = false;
  bool closed_ = false;
  std::unique_ptr<kube::Client> client_;
  std::unique_ptr<kube::CoreApi> core_;
  std::unique_ptr<kube::ResourceApi> res_;
  std::string server_version_;
  Expected<std::string> dra_version_ = FailedPrecondition("not connected");
  std::string ns_;
  std::string base_class_;
  Manifest base_class_manifest_;
  std::vector<std::string> classes_;  // DeviceClasses created (cluster-scoped)
  std::vector<nlohmann::json> pods_created_;
  CheckResult* record_ = nullptr;
};

}  // namespace accel_dra::probe
