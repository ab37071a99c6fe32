#pragma once
// PluginServer: everything kubelet talks to over gRPC.
//
//  * the DRA service socket  <plugins_dir>/<driver>/dra.sock   (dra-<podUID>.sock with a pod UID)
//    serving DRAPlugin v1 and v1beta1 (and v1alpha1 DRAResourceHealth when a health source is set);
//  * the registration socket <registrar_dir>/<driver>-reg.sock (<driver>-<podUID>-reg.sock)
//    serving pluginregistration.Registration, created after the DRA socket;
//  * optionally grpc.health.v1.Health on TCP <healthcheck_address>:<healthcheck_port>, answering
//    SERVING only if both unix sockets answer a real call at check time (liveness probe).
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
  // Optional. When set, NodeWatchResources is served and "v1alpha1.DRAResourceHealth" advertised.
  std::shared_ptr<model::DeviceHealthSource> health_source;
  // A health stream sends the full list when the generation changes and at least this often.
  std::chrono::milliseconds health_resend_interval{std::chrono::seconds(10)};
  // How often an open health stream polls the source for a new generation.
  std::chrono::milliseconds health_poll_interval{250};

  // grpc.health.v1 liveness endpoint: -1 = off, 0 = pick a free port (see healthcheck_port()).
  int healthcheck_port = -1;
  // 127.0.0.1 is enough for local checks; a kubelet `grpc:` probe needs 0.0.0.0 (or the pod IP).
  std::string healthcheck_address = "127.0.0.1";
  // Deadline of each of the two unix-socket calls made by one health check.
  std::chrono::milliseconds healthcheck_call_timeout{1000};

  // Re-creating the registration socket after kubelet reported a failed registration: the first
  // attempt waits `reregister_backoff_initial`, each consecutive failure doubles it up to the max.
  std::chrono::milliseconds reregister_backoff_initial{1000};
  std::chrono::milliseconds reregister_backoff_max{std::chrono::seconds(30)};

  // Graceful shutdown deadline per server; in-flight calls are cancelled after it.
  std::chrono::milliseconds shutdown_deadline{std::chrono::seconds(5)};
};

// The socket paths derived from the options (pure computation, no checks).
struct PluginSocketPaths {
  std::string plugin_data_dir;  // <plugins_dir>/<driver>
  std::string dra_socket;       // absolute; advertised as PluginInfo.endpoint
  std::string registration_socket;
};
PluginSocketPaths ComputeSocketPaths(const PluginServerOptions& options);

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
