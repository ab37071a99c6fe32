#pragma once
// PluginServer: everything kubelet talks to over gRPC.
//
//  * the DRA service socket  <plugins_dir>/<driver>/dra.sock   (dra-<podUID>.sock with a pod UID;
//    a shorter unique name when that path would exceed the unix socket limit, see below)
//    serving DRAPlugin v1 and v1beta1 (and DRAResourceHealth v1 and v1alpha1 when a health
//    source is set; GetInfo then advertises v1.DRAPlugin, v1beta1.DRAPlugin,
//    v1.DRAResourceHealth, v1alpha1.DRAResourceHealth in that order);
//  * the registration socket <registrar_dir>/<driver>-reg.sock (<driver>-<podUID>-reg.sock)
//    serving pluginregistration.Registration, created after the DRA socket;
//  * optionally grpc.health.v1.Health on TCP <healthcheck_address>:<healthcheck_port>, answering
//    SERVING only if both unix sockets answer a real call at check time (liveness probe); bound to
//    127.0.0.1 unless an address is given (the plugin passes the pod IP, $POD_IP, when it has it:
//    DefaultHealthcheckAddress()).
//  * The streaming health methods (grpc.health.v1 Watch; NodeWatchResources, v1 and v1alpha1
//    counted together) serve at most max_health_streams streams each at once; one more is refused
//    with RESOURCE_EXHAUSTED.
//  * grpc.health.v1 service kRecoveryHealthService ("recovery") answers NOT_SERVING while
//    `recovery_problem` is set (what start-up recovery could not restore, e.g. a lost checkpoint),
//    else as liveness does; liveness (service "") never looks at it, so a degraded start does not
//    restart the plugin. Point a readiness probe at it to see the state in `kubectl get pods`.
//
// Promises: sockets are mode 0600; a stale socket of our own name is removed before listening
// (any other kind of file at that path is an error, never deleted); Start() checks the 108-byte
// sun_path limit up front; calls are served by a thread pool (many concurrent prepares); when
// kubelet reports a failed registration the registration socket is re-created with backoff so
// kubelet registers again; Stop() shuts everything down gracefully and removes both socket files.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "accel_dra/common/status.h"
#include "accel_dra/model/claim.h"
#include "accel_dra/model/health.h"

namespace accel_dra::kubelet {

inline constexpr char kDefaultRegistrarDir[] = "/var/lib/kubelet/plugins_registry";
inline constexpr char kDefaultPluginsDir[] = "/var/lib/kubelet/plugins";

struct PluginServerOptions {
  std::string driver_name = "accel-dra.dev";
  std::string registrar_dir = kDefaultRegistrarDir;
  std::string plugins_dir = kDefaultPluginsDir;
  // Non-empty: per-instance socket names for seamless (maxSurge) DaemonSet updates.
  std::string pod_uid;

  // Required. Called concurrently from gRPC worker threads.
  std::shared_ptr<model::ClaimPreparer> preparer;
  // Optional. When set, NodeWatchResources is served and "v1.DRAResourceHealth",
  // "v1alpha1.DRAResourceHealth" advertised.
  std::shared_ptr<model::DeviceHealthSource> health_source;
  // A health stream sends the full list when the generation changes and at least this often
  // (kubelet turns a device Unknown when it is not re-reported within 30 s, its default
  // health_check_timeout_seconds: keep this well below).
  std::chrono::milliseconds health_resend_interval{std::chrono::seconds(10)};
  // How often an open health stream polls the source for a new generation.
  std::chrono::milliseconds health_poll_interval{250};

  // grpc.health.v1 liveness endpoint: -1 = off, 0 = pick a free port (see healthcheck_port()).
  int healthcheck_port = -1;
  // 127.0.0.1 is enough for local checks; a kubelet `grpc:` probe connects to the pod IP (see
  // DefaultHealthcheckAddress). 0.0.0.0 exposes the endpoint on every interface of the node.
  std::string healthcheck_address = "127.0.0.1";
  // Deadline of each of the two unix-socket calls made by one health check.
  std::chrono::milliseconds healthcheck_call_timeout{1000};
  // Concurrent streams per streaming health method (each holds a server thread); the two
  // NodeWatchResources versions share one limit. kubelet keeps one NodeWatchResources stream (of
  // the version it picked); liveness probes make unary Check calls.
  int max_health_streams = 8;
  // Set by the plugin when start-up recovery lost state (the checkpoint was unusable and claims
  // were rebuilt from their CDI specs): the health service's "recovery" service reports
  // NOT_SERVING with this in the log, until the plugin restarts. "" = nothing lost.
  std::string recovery_problem;

  // Re-creating the registration socket after kubelet reported a failed registration: the first
  // attempt waits `reregister_backoff_initial`, each consecutive failure doubles it up to the max.
  std::chrono::milliseconds reregister_backoff_initial{1000};
  std::chrono::milliseconds reregister_backoff_max{std::chrono::seconds(30)};

  // Graceful shutdown deadline per server; in-flight calls are cancelled after it.
  std::chrono::milliseconds shutdown_deadline{std::chrono::seconds(5)};
};

// The socket paths derived from the options (pure computation, no checks). With a pod UID the
// names carry it (dra-<podUID>.sock, <driver>-<podUID>-reg.sock); when such a path would exceed
// the 107-byte unix socket limit (a deep kubelet --root-dir), that socket is named with
// ShortSocketId(pod UID) instead (dra-<16 hex>.sock, <driver>-<16 hex>-reg.sock): still unique
// per pod, so the old and the new plugin pod of a rolling update never share a socket.
struct PluginSocketPaths {
  std::string plugin_data_dir;  // <plugins_dir>/<driver>
  std::string dra_socket;       // absolute; advertised as PluginInfo.endpoint
  std::string registration_socket;
};
PluginSocketPaths ComputeSocketPaths(const PluginServerOptions& options);
// 16 lowercase hex digits: the FNV-1a 64-bit hash of the pod UID (the short socket name).
std::string ShortSocketId(std::string_view pod_uid);

// The grpc.health.v1 service name that reports PluginServerOptions::recovery_problem.
inline constexpr std::string_view kRecoveryHealthService = "recovery";

// The health service's address when none is configured: $POD_IP when set and not empty (the
// downward API's status.podIP, which a kubelet `grpc:` liveness probe connects to), else
// 127.0.0.1 (local checks only).
std::string DefaultHealthcheckAddress();

class PluginServer {
 public:
  explicit PluginServer(PluginServerOptions options);
  ~PluginServer();  // Stop()
  PluginServer(const PluginServer&) = delete;
  PluginServer& operator=(const PluginServer&) = delete;

  // Creates directories, removes stale sockets, serves DRA, then registration, then health.
  // On error nothing is left running and the returned status says what to fix. Call once.
  Status Start();
  // Idempotent; safe to call from any thread except a gRPC handler of this server.
  void Stop();

  const PluginSocketPaths& paths() const { return paths_; }
  // Bound TCP port of the health endpoint after Start(), -1 when disabled.
  int healthcheck_port() const;
  // Incremented every time the registration socket was (re-)created; 1 after Start().
  uint64_t registration_socket_generation() const;

 private:
  class Impl;
  PluginSocketPaths paths_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace accel_dra::kubelet
