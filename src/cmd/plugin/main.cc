// accel-dra-plugin: the per-node DRA driver process. Flags and wiring only: the daemon's run loop
// is node::NodeAgent (include/accel_dra/node/agent.h), which composes the published pool with
// node::PoolComposer; the kubelet side is kubelet::PluginServer over claims::Preparer.

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "accel_dra/build_info.h"
#include "accel_dra/cdi/cdi.h"
#include "accel_dra/checkpoint/checkpoint.h"
#include "accel_dra/claims/preparer.h"
#include "accel_dra/common/env.h"
#include "accel_dra/common/log.h"
#include "accel_dra/common/yaml.h"
#include "accel_dra/discovery/driver_stack.h"
#include "accel_dra/discovery/events.h"
#include "accel_dra/discovery/health.h"
#include "accel_dra/discovery/manager.h"
#include "accel_dra/discovery/nvml.h"
#include "accel_dra/discovery/pci.h"
#include "accel_dra/discovery/simulated.h"
#include "accel_dra/kube/client.h"
#include "accel_dra/kubelet/plugin_server.h"
#include "accel_dra/metrics/prometheus.h"
#include "accel_dra/node/agent.h"
#include "accel_dra/node/node_watch.h"
#include "accel_dra/node/pool_composer.h"
#include "accel_dra/slices/publisher.h"
#include "accel_dra/slices/slices.h"
#include "webhook_command.h"

namespace accel_dra {
namespace {

struct Flags {
  std::string driver_name = build_info::kDefaultDriverName;
  std::string node_name;
  std::string kubeconfig;
  std::string cdi_root = "/var/run/cdi";
  std::string registrar_dir = "/var/lib/kubelet/plugins_registry";
  std::string plugins_dir = "/var/lib/kubelet/plugins";
  std::string pod_uid;
  double cleanup_interval_s = 60;
  int healthcheck_port = -1;
  std::string healthcheck_address;  // "": kubelet::DefaultHealthcheckAddress() ($POD_IP, 127.0.0.1)
  std::string metrics_address = "127.0.0.1";
  int metrics_port = 0;
  int verbosity = 0;
  std::string log_format = "text";
  int simulate = -1;
  std::string simulate_profile;
  std::string host_root = "/";
  std::string pci_ids_file;
  std::string nvml_library = "libnvidia-ml.so.1";
  std::string containerd_config = "/etc/containerd/config.toml";
  bool no_nvml = false;
  bool delete_slices_on_exit = false;
  double startup_timeout_s = 60;
  double rediscover_interval_s = 0.5;
  double rescan_interval_s = 30;
  std::string device_events = "auto";
  bool device_taints = true;
  std::string device_taint_effect = "NoSchedule";
  double device_taint_settle_s = 30;
  std::string output = "yaml";
  std::string inspect_tool;
  std::string smi_tool;
  std::string driver_root = "/";
  bool device_metadata = false;
  bool testing_expose_all_devices = false;
  std::string nvidia_smi = "nvidia-smi";
};

// --inspect-tool and --smi-tool must name an executable regular file (checked at start, not at
// the first prepare, so a typo fails the rollout instead of every pod).
Status CheckTool(const std::string& flag, const std::string& path) {
  struct stat st {};
  std::string what = flag + " " + path;
  if (path.empty() || path.front() != '/') {
    return InvalidArgument(what + ": must be an absolute host path");
  }
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(what, errno);
  if (!S_ISREG(st.st_mode)) return InvalidArgument(what + ": not a regular file");
  if (::access(path.c_str(), X_OK) != 0 || (st.st_mode & 0111) == 0) {
    return InvalidArgument(what + ": not executable (chmod +x it)");
  }
  return Status();
}

int Fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "accel-dra-plugin: error: %s\n", message.c_str());
  return code;
}

std::string Hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

// Backends chosen by the flags. `nvml` (optional) gets the NVML-enriched backend, if any.
Expected<discovery::DeviceManager> MakeDevices(const Flags& f, const std::string& node,
                                               discovery::NvmlEnrichedBackend** nvml = nullptr) {
  discovery::DeviceManager mgr;
  Env* env = Env::Default();
  // Every backend's devices get their vendor's driver stack from --driver-root.
  auto add = [&](std::unique_ptr<discovery::Backend> b) {
    mgr.AddBackend(std::make_unique<discovery::DriverStackBackend>(
        std::move(b), discovery::DriverRoot{env, HostRoot(f.host_root), f.driver_root}));
  };
  if (!f.simulate_profile.empty()) {
    auto content = env->ReadFile(f.simulate_profile);
    if (!content.ok()) {
      return content.status().WithContext("cannot read --simulate-profile");
    }
    ASSIGN_OR_RETURN(auto profile, discovery::ParseSimProfile(*content, f.simulate_profile));
    add(std::make_unique<discovery::SimulatedBackend>(env, node, std::move(profile),
                                                      f.simulate_profile));
  } else if (f.simulate >= 0) {
    add(std::make_unique<discovery::SimulatedBackend>(env, node,
                                                      discovery::DefaultSimProfile(f.simulate)));
  }
  if (mgr.empty()) {
    // Real hardware: PCI/sysfs under --host-root, enriched with NVML when it is present.
    discovery::PciOptions popts;
    popts.ids_file = f.pci_ids_file;
    auto pci = std::make_unique<discovery::PciBackend>(env, HostRoot(f.host_root), popts);
    if (f.no_nvml) {
      add(std::move(pci));
    } else {
      auto enriched =
          std::make_unique<discovery::NvmlEnrichedBackend>(std::move(pci), f.nvml_library);
      if (nvml != nullptr) *nvml = enriched.get();
      add(std::move(enriched));
    }
  }
  return mgr;
}

slices::PoolOptions PoolFor(const Flags& f, const std::string& node) {
  slices::PoolOptions p;
  p.driver = f.driver_name;
  p.node_name = node;
  return p;
}

std::chrono::milliseconds Seconds(double s) {
  return std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
}

int RunDiscover(const Flags& f) {
  std::string node = f.node_name.empty() ? Hostname() : f.node_name;
  auto devices = MakeDevices(f, node);
  if (!devices.ok()) return Fail(devices.status().message());
  // Composed as the daemon composes it, without a Node: the node-level attributes without the
  // container runtime ones, and no health.
  model::InventoryPtr inventory;
  node::PoolComposer composer(
      {.driver_name = f.driver_name},
      [&inventory](model::InventoryPtr inv) { inventory = std::move(inv); });
  composer.SetInventory(devices->Refresh());
  composer.Publish();
  auto pool = slices::BuildPool(*inventory, PoolFor(f, node));
  for (const auto& p : pool.problems) spdlog::warn("device {}", p);
  nlohmann::json items = nlohmann::json::array();
  for (const auto& chunk : pool.chunks) {
    items.push_back(
        slices::MakeSlice(PoolFor(f, node), chunk, 1, static_cast<int64_t>(pool.chunks.size())));
  }
  nlohmann::json list = {{"apiVersion", "v1"}, {"kind", "List"}, {"items", items}};
  if (f.output == "json") {
    std::cout << list.dump(2) << "\n";
  } else {
    std::cout << JsonToYaml(list);
  }
  return 0;
}

// What is checked before anything starts, so a mistake is one clear line, not a half-started
// daemon.
Status CheckPluginFlags(const Flags& f) {
  if (f.node_name.empty()) {
    return InvalidArgument(
        "--node-name (or NODE_NAME) is required: the name of the Node this plugin runs on");
  }
  if (!f.inspect_tool.empty()) RETURN_IF_ERROR(CheckTool("--inspect-tool", f.inspect_tool));
  if (!f.smi_tool.empty()) RETURN_IF_ERROR(CheckTool("--smi-tool", f.smi_tool));
  if (f.testing_expose_all_devices) {
    spdlog::warn(
        "TESTING ONLY: --testing-expose-all-devices is set: every claim's containers get the "
        "device nodes of ALL devices of this node, also devices they did not claim. Device "
        "isolation is broken on purpose; never use this outside tests.");
  }
  return Status();
}

// The API client, once the apiserver answers (waiting at most --startup-timeout after `t0`).
struct Api {
  std::unique_ptr<kube::Client> client;
  std::unique_ptr<kube::ResourceApi> resources;
};
Expected<Api> Connect(const Flags& f, std::chrono::steady_clock::time_point t0) {
  ASSIGN_OR_RETURN(auto config, kube::ResolveConfig(f.kubeconfig));
  config.user_agent = std::string("accel-dra-plugin/") + build_info::kVersion;
  ASSIGN_OR_RETURN(auto client, kube::Client::Create(config));
  auto resources = std::make_unique<kube::ResourceApi>(client.get());
  auto version = kube::WaitForVersion(*resources, t0 + Seconds(f.startup_timeout_s));
  if (!version.ok()) {
    return version.status().WithContext("cannot use the Kubernetes API at " + config.server);
  }
  spdlog::info("accel-dra-plugin {} driver={} node={} resource.k8s.io/{}", build_info::kVersion,
               f.driver_name, f.node_name, *version);
  return Api{std::move(client), std::move(resources)};
}

// The pool, owned by the Node (when it can be read) so that deleting the Node deletes its slices.
slices::SlicePublisher::Options PublisherOptions(const Flags& f, kube::ResourceApi& api) {
  slices::SlicePublisher::Options popts;
  popts.pool = PoolFor(f, f.node_name);
  auto node = api.GetNode(f.node_name);
  if (node.ok() && node->contains("/metadata/uid"_json_pointer)) {
    popts.pool.node_uid = (*node)["metadata"]["uid"].get<std::string>();
  } else {
    spdlog::warn("cannot read Node {} ({}); slices are published without an owner reference",
                 f.node_name, node.ok() ? "no uid" : node.status().message());
  }
  return popts;
}

node::NodeAttributeWatcher::Options WatcherOptions(const Flags& f) {
  node::NodeAttributeWatcher::Options wopts;
  wopts.node_name = f.node_name;
  wopts.containerd_config = f.containerd_config;
  wopts.host_root = HostRoot(f.host_root);
  return wopts;
}

// `rescan_to_notice_hotplug`: hardware without an event source, so a full rescan runs every
// --rediscover-interval instead of every --rescan-interval.
node::NodeAgent::Options AgentOptions(const Flags& f, bool rescan_to_notice_hotplug) {
  node::NodeAgent::Options aopts;
  aopts.pool.driver_name = f.driver_name;
  aopts.pool.device_taints = f.device_taints;
  aopts.pool.taint_effect = f.device_taint_effect;
  aopts.pool.taint_settle = Seconds(f.device_taint_settle_s);
  aopts.check_every = Seconds(f.rediscover_interval_s);
  aopts.rescan_every = rescan_to_notice_hotplug ? aopts.check_every : Seconds(f.rescan_interval_s);
  aopts.sweep_every = Seconds(f.cleanup_interval_s);
  return aopts;
}

// What start-up recovery could not restore, for the health service's "recovery" service; "" when
// the checkpoint loaded.
std::string RecoveryProblem(const checkpoint::LoadReport& load,
                            const claims::RecoveryReport& recovered) {
  if (load.moved_aside_to.empty()) return "";
  return "the checkpoint was unusable and was moved aside to " + load.moved_aside_to.string() +
         " at start; " + std::to_string(recovered.claims_rebuilt) +
         " prepared claim(s) were rebuilt from their CDI specs and " +
         std::to_string(recovered.specs_kept.size()) +
         " CDI spec(s) were kept without a record (see the log); restart the plugin to clear this";
}

kubelet::PluginServerOptions ServerOptions(const Flags& f,
                                           std::shared_ptr<model::ClaimPreparer> preparer,
                                           std::shared_ptr<model::DeviceHealthSource> health,
                                           std::string recovery_problem) {
  kubelet::PluginServerOptions sopts;
  sopts.driver_name = f.driver_name;
  sopts.registrar_dir = f.registrar_dir;
  sopts.plugins_dir = f.plugins_dir;
  sopts.pod_uid = f.pod_uid;
  sopts.preparer = std::move(preparer);
  sopts.healthcheck_port = f.healthcheck_port;
  sopts.healthcheck_address =
      f.healthcheck_address.empty() ? kubelet::DefaultHealthcheckAddress() : f.healthcheck_address;
  sopts.health_source = std::move(health);
  sopts.recovery_problem = std::move(recovery_problem);
  return sopts;
}

// Logs how long the first publish took after start (the start-up figure of docs/benchmarks.md).
std::thread AnnounceFirstPublish(slices::SlicePublisher& publisher,
                                 std::chrono::steady_clock::time_point t0) {
  return std::thread([&publisher, t0] {
    if (publisher.WaitInSync(std::chrono::minutes(10))) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
      spdlog::info("first ResourceSlices published {} ms after start", ms);
    }
  });
}

// The daemon's life once it is set up: the Node read, the first slices, the kubelet sockets,
// then the agent's loop until SIGTERM/SIGINT; on the way out everything stops in order.
int Serve(const Flags& f, std::chrono::steady_clock::time_point t0, node::NodeAgent& agent,
          node::NodeAttributeWatcher& watcher, slices::SlicePublisher& publisher,
          const kubelet::PluginServerOptions& sopts, const node::NodeAgent::Sweep& sweep) {
  watcher.Start();  // reads the Node once: the first slices carry its attributes
  publisher.Start();
  agent.Publish();
  std::thread announce = AnnounceFirstPublish(publisher, t0);
  kubelet::PluginServer server(sopts);
  Status served = server.Start();
  if (served.ok()) {
    spdlog::info("serving kubelet: registration {} DRA {}", server.paths().registration_socket,
                 server.paths().dra_socket);
    agent.Run(sweep);
    server.Stop();
  }
  watcher.Stop();
  publisher.Stop();
  announce.join();
  if (!served.ok()) return Fail(served.message());
  if (f.delete_slices_on_exit) {
    if (Status st = publisher.DeleteAll(); !st.ok()) return Fail(st.message());
  }
  return 0;
}

// The metrics/health endpoint (--metrics-port), started before anything else so that /healthz
// answers and /readyz says what is missing while the plugin starts. /healthz fails when a kubelet
// socket the plugin serves is gone.
Expected<std::unique_ptr<http::Server>> StartMetrics(const Flags& f,
                                                     const metrics::PrometheusRecorder& recorder,
                                                     const kubelet::PluginSocketPaths& paths) {
  if (f.metrics_port == 0) return std::unique_ptr<http::Server>();
  auto alive = [paths] {
    for (const auto& socket : {paths.dra_socket, paths.registration_socket}) {
      struct stat st {};
      if (::stat(socket.c_str(), &st) == 0) continue;
      return FailedPrecondition("kubelet socket " + socket + " is gone (" +
                                (errno == ENOENT ? "removed" : "cannot be read") +
                                "); restart the plugin");
    }
    return Status();
  };
  std::function<Status()> check = alive;
  metrics::EndpointOptions eopts{f.metrics_address, f.metrics_port};
  auto server = metrics::ServeEndpoint(eopts, recorder, [check, started = false]() mutable {
    // Until the sockets exist once, the plugin is starting up: alive.
    Status st = check();
    if (st.ok()) started = true;
    return started ? st : Status();
  });
  if (!server.ok()) return server.status().WithContext("--metrics-port");
  spdlog::info("metrics and health endpoint: http://{}:{}/metrics, /healthz, /readyz",
               f.metrics_address, (*server)->port());
  return server;
}

int RunPlugin(const Flags& f) {
  const auto t0 = std::chrono::steady_clock::now();
  if (Status st = CheckPluginFlags(f); !st.ok()) return Fail(st.message());
  metrics::PrometheusRecorder recorder(build_info::kVersion, f.driver_name);
  SetMetrics(&recorder);
  struct Uninstall {
    ~Uninstall() { SetMetrics(nullptr); }
  } uninstall;
  auto endpoint =
      StartMetrics(f, recorder, kubelet::ComputeSocketPaths(ServerOptions(f, {}, {}, "")));
  if (!endpoint.ok()) return Fail(endpoint.status().message());
  auto events_mode = discovery::ParseDeviceEventsMode(f.device_events);
  if (!events_mode.ok()) return Fail(events_mode.status().message());
  discovery::NvmlEnrichedBackend* nvml = nullptr;
  auto devices = MakeDevices(f, f.node_name, &nvml);
  if (!devices.ok()) return Fail(devices.status().message());
  auto connected = Connect(f, t0);
  if (!connected.ok()) return Fail(connected.status().message());
  kube::ResourceApi& api = *connected->resources;
  slices::SlicePublisher publisher(&api, PublisherOptions(f, api));

  // The node agent: device events (hotplug) for hardware discovery (simulated devices only poll
  // their profile), health, the Node's runtime attributes; it discovers once when created.
  const bool hardware = f.simulate < 0 && f.simulate_profile.empty();
  std::unique_ptr<discovery::DeviceEventSource> events;
  if (hardware) events = discovery::OpenDeviceEvents(*events_mode, HostRoot(f.host_root));
  auto health = std::make_shared<discovery::DeviceHealthTracker>(
      Env::Default(), HostRoot(f.host_root), f.node_name);
  auto watcher = node::NodeAttributeWatcher::Create(&api, Env::Default(), WatcherOptions(f));
  if (!watcher.ok()) return Fail(watcher.status().message());
  node::NodeAgent::Parts parts;
  parts.devices = &*devices;
  parts.events = events.get();
  parts.health = health.get();
  parts.nvml = nvml;
  parts.node_attributes = watcher->get();
  parts.publish = [&publisher](model::InventoryPtr inv) { publisher.Update(std::move(inv)); };
  auto agent = node::NodeAgent::Create(AgentOptions(f, hardware && !events), std::move(parts));
  if (!agent.ok()) return Fail(agent.status().message());
  const node::InventoryHolder& inventory = (*agent)->inventory();

  // Kubelet plugin: checkpoint, CDI, preparer, gRPC servers.
  Env* env = Env::Default();
  std::string data_dir = f.plugins_dir + "/" + f.driver_name;
  checkpoint::OpenOptions copts;
  // With per-pod sockets two plugin pods serve side by side during a rolling update: they share
  // the checkpoint, each operation locking it, instead of one process owning it.
  copts.shared = !f.pod_uid.empty();
  auto ckpt = checkpoint::Checkpoint::Open(env, data_dir, HostRoot(f.host_root), copts);
  if (!ckpt.ok()) return Fail("checkpoint: " + ckpt.status().message());
  const auto& report = (*ckpt)->load_report();
  if (report.warning) spdlog::error("{}", report.warning->message());
  if (report.removed_temp_files > 0) {
    spdlog::warn("removed {} checkpoint temp files left by an interrupted write",
                 report.removed_temp_files);
  }
  cdi::CdiWriter cdi_writer(env, f.cdi_root, f.driver_name);
  if (Status st = cdi_writer.EnsureRoot(); !st.ok()) return Fail(st.message());
  claims::PreparerOptions prep_opts;
  prep_opts.driver_name = f.driver_name;
  prep_opts.pool_name = f.node_name;
  prep_opts.shared_checkpoint = copts.shared;
  prep_opts.inspect_tool = f.inspect_tool;
  prep_opts.smi_tool = f.smi_tool;
  prep_opts.driver_info_dir = data_dir + "/driver-info";
  prep_opts.testing_expose_all_devices = f.testing_expose_all_devices;
  prep_opts.nvidia_smi = f.nvidia_smi;
  prep_opts.device_metadata_dir = data_dir + "/dra-device-metadata";
  prep_opts.device_metadata = f.device_metadata;
  auto preparer = std::make_shared<claims::Preparer>(
      prep_opts,
      [&api](const std::string& ns, const std::string& name) {
        return api.GetResourceClaim(ns, name);
      },
      [&inventory] { return inventory.Get(); }, ckpt->get(), &cdi_writer);
  auto recovered = preparer->Recover();
  if (!recovered.ok()) {
    return Fail("recovering prepared claims: " + recovered.status().message());
  }
  spdlog::info(
      "checkpoint: {} prepared claims ({} CDI specs re-created), {} interrupted prepares "
      "rolled back, {} orphaned CDI specs removed",
      recovered->completed, recovered->specs_recreated, recovered->rolled_back,
      recovered->orphan_specs_removed);
  // The loop reports prepared claims whose device vanished or changed (health, log).
  (*agent)->SetHeldDevices(
      [cp = ckpt->get()] { return model::HeldDevicesOf(cp->Snapshot().claims); });

  return Serve(f, t0, **agent, **watcher, publisher,
               ServerOptions(f, preparer, health, RecoveryProblem(report, *recovered)),
               [&preparer] { preparer->CleanupStale(); });
}

// klog-style "-v=4" is not CLI11 syntax; accept it as "--v=4".
std::vector<std::string> NormalizeArgs(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) {  // CLI11 wants reversed order for vector parsing
    std::string a = argv[i];
    if (a.rfind("-v=", 0) == 0) a = "-" + a;
    args.push_back(a);
  }
  return args;
}

// Flags, registered by group (the order of --help).
void AddClusterFlags(CLI::App& app, Flags& f) {
  app.add_option("--driver-name", f.driver_name, "DRA driver name")
      ->envname("DRIVER_NAME")
      ->capture_default_str();
  app.add_option("--node-name", f.node_name, "name of the Node this plugin runs on")
      ->envname("NODE_NAME");
  app.add_option("--kubeconfig", f.kubeconfig,
                 "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  app.add_option("--startup-timeout", f.startup_timeout_s,
                 "seconds to wait for the apiserver at start")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag("--delete-slices-on-exit", f.delete_slices_on_exit,
               "delete this node's ResourceSlices on a clean shutdown");
}

void AddKubeletFlags(CLI::App& app, Flags& f) {
  app.add_option("--kubelet-registrar-directory-path", f.registrar_dir,
                 "kubelet plugin registration directory")
      ->envname("KUBELET_REGISTRAR_DIRECTORY_PATH")
      ->capture_default_str();
  app.add_option("--kubelet-plugins-directory-path", f.plugins_dir, "kubelet plugins directory")
      ->envname("KUBELET_PLUGINS_DIRECTORY_PATH")
      ->capture_default_str();
  app.add_option("--pod-uid", f.pod_uid,
                 "UID of the plugin's pod: per-pod socket names for rolling updates")
      ->envname("POD_UID");
  app.add_option("--healthcheck-port", f.healthcheck_port,
                 "port of the gRPC health service (-1 disables)")
      ->envname("HEALTHCHECK_PORT")
      ->capture_default_str();
  app.add_option("--healthcheck-address", f.healthcheck_address,
                 "address of the gRPC health service (default: $POD_IP when set, which a kubelet "
                 "grpc probe connects to, else 127.0.0.1)")
      ->envname("HEALTHCHECK_ADDRESS");
}

void AddClaimFlags(CLI::App& app, Flags& f) {
  app.add_option("--cdi-root", f.cdi_root, "directory for CDI specs")
      ->envname("CDI_ROOT")
      ->capture_default_str();
  app.add_option("--cleanup-interval", f.cleanup_interval_s,
                 "seconds between checks for prepared claims whose ResourceClaim is gone")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--inspect-tool", f.inspect_tool,
                 "host path of a static inspect binary that every claim's containers get "
                 "read-only at " +
                     std::string(model::kInspectToolContainerPath))
      ->envname("ACCEL_DRA_INSPECT_TOOL");
  app.add_option("--smi-tool", f.smi_tool,
                 "host path of the static accel-dra-smi binary (prints the published driver and "
                 "runtime versions from inside a container) that every claim's containers get "
                 "read-only at " +
                     std::string(model::kSmiToolContainerPath))
      ->envname("ACCEL_DRA_SMI_TOOL");
  app.add_flag("--device-metadata", f.device_metadata,
               "KEP-5304 device metadata: give the containers of each claim request a read-only "
               "DeviceMetadata file (devices and attributes) under "
               "/var/run/kubernetes.io/dra-device-attributes/ through a CDI device (off by "
               "default, like the upstream kubelet-plugin helper)");
  app.add_option("--nvidia-smi", f.nvidia_smi,
                 "nvidia-smi program that applies TimeSlicing intervals to NVIDIA GPUs (searched "
                 "on PATH unless it contains a '/')")
      ->envname("NVIDIA_SMI")
      ->capture_default_str();
  // Hidden (empty group): a deliberate isolation breach for the conformance probe's negative test.
  app.add_flag("--testing-expose-all-devices", f.testing_expose_all_devices,
               "TESTING ONLY: give every claim the device nodes of all devices")
      ->group("");
}

void AddDiscoveryFlags(CLI::App& app, Flags& f) {
  app.add_option("--simulate", f.simulate, "publish N simulated devices")
      ->envname("ACCEL_DRA_SIMULATE")
      ->check(CLI::Range(0, 100000));
  app.add_option("--simulate-profile", f.simulate_profile,
                 "YAML file describing simulated devices (re-read when it changes)")
      ->envname("ACCEL_DRA_SIMULATE_PROFILE");
  app.add_option("--host-root", f.host_root, "where the host's /sys, /dev and /proc are")
      ->envname("HOST_ROOT")
      ->capture_default_str();
  app.add_option("--driver-root", f.driver_root,
                 "host directory holding the driver's user space (libraries, tools, firmware) "
                 "whose stack containers get, read under --host-root (e.g. /run/nvidia/driver "
                 "with a containerised driver); see docs/driver-stack.md")
      ->envname("DRIVER_ROOT")
      ->capture_default_str();
  app.add_option("--pci-ids-file", f.pci_ids_file,
                 "PCI ID database for product names (default: libpci's, /usr/share/misc/pci.ids)")
      ->envname("PCI_IDS_FILE");
  app.add_option("--containerd-config", f.containerd_config,
                 "containerd configuration read under --host-root for cdiEnabled (\"\": none)")
      ->envname("CONTAINERD_CONFIG")
      ->capture_default_str();
  app.add_flag("--no-nvml", f.no_nvml, "do not load NVML even when it is present");
  app.add_option("--nvml-library", f.nvml_library, "NVML library loaded at run time when present")
      ->envname("NVML_LIBRARY")
      ->capture_default_str();
}

// How changes of the devices are noticed and published (NodeAgent).
void AddDeviceWatchFlags(CLI::App& app, Flags& f) {
  app.add_option("--device-events", f.device_events,
                 "how device hotplug is noticed: udev (netlink monitor), inotify (watch the tree "
                 "under --host-root), poll (rescan every --rediscover-interval), auto (udev when "
                 "--host-root is /, else inotify; falls back to poll)")
      ->envname("DEVICE_EVENTS")
      ->check(CLI::IsMember({"auto", "udev", "inotify", "poll"}))
      ->capture_default_str();
  app.add_option("--rediscover-interval", f.rediscover_interval_s,
                 "seconds between cheap device-change checks")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--rescan-interval", f.rescan_interval_s,
                 "seconds between full device rescans, a safety net for missed device events")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag("--device-taints", f.device_taints,
               "publish unhealthy devices with the taint <driver>/unhealthy=<reason> (the "
               "DRADeviceTaints feature gate: GA in Kubernetes 1.37, beta and on in 1.36; where "
               "the apiserver drops the taints, this is logged once and devices are published "
               "without them)")
      ->capture_default_str();
  app.add_option("--device-taint-effect", f.device_taint_effect,
                 "the effect of that taint: NoSchedule (no new allocations), NoExecute (also "
                 "evicts the pods using the device) or None (informational)")
      ->check(CLI::IsMember({"NoSchedule", "NoExecute", "None"}))
      ->capture_default_str();
  app.add_option("--device-taint-settle", f.device_taint_settle_s,
                 "seconds a device must stay healthy again before its taint is removed")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

void AddMetricsFlags(CLI::App& app, Flags& f) {
  app.add_option("--metrics-address", f.metrics_address,
                 "address of the HTTP endpoint with /metrics, /healthz and /readyz (a kubelet "
                 "probe or Prometheus needs the pod's address or 0.0.0.0)")
      ->envname("METRICS_ADDRESS")
      ->capture_default_str();
  app.add_option("--metrics-port", f.metrics_port,
                 "port of the metrics and health endpoint (0 disables it)")
      ->envname("METRICS_PORT")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
}

void AddLogFlags(CLI::App& app, Flags& f) {
  app.add_option("-v,--v", f.verbosity, "log verbosity (klog style)")->capture_default_str();
  app.add_option("--log-format", f.log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

CLI::App* AddDiscoverCommand(CLI::App& app, Flags& f) {
  auto* discover = app.add_subcommand(
      "discover", "print the ResourceSlices this node would publish (no cluster needed)");
  discover->fallthrough();  // global flags may follow the subcommand
  discover->add_option("-o,--output", f.output, "yaml or json")
      ->check(CLI::IsMember({"yaml", "json"}))
      ->capture_default_str();
  return discover;
}

}  // namespace
}  // namespace accel_dra

int main(int argc, char** argv) {
  using accel_dra::Flags;
  // Block the shutdown signals before any thread starts; the NodeAgent's loop reads them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  Flags f;
  CLI::App app{"accel-dra-plugin: Kubernetes DRA driver for accelerators", "accel-dra-plugin"};
  app.set_version_flag("--version", std::string(accel_dra::build_info::kVersion));
  accel_dra::AddClusterFlags(app, f);
  accel_dra::AddKubeletFlags(app, f);
  accel_dra::AddClaimFlags(app, f);
  accel_dra::AddDiscoveryFlags(app, f);
  accel_dra::AddDeviceWatchFlags(app, f);
  accel_dra::AddMetricsFlags(app, f);
  accel_dra::AddLogFlags(app, f);
  CLI::App* discover = accel_dra::AddDiscoverCommand(app, f);
  accel_dra::WebhookFlags wf;
  CLI::App* webhook = accel_dra::AddWebhookCommand(app, wf);

  try {
    auto args = accel_dra::NormalizeArgs(argc, argv);
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return accel_dra::Fail(std::string(e.what()) + " (see --help)", 2);
  }
  accel_dra::InitLogging(f.verbosity, f.log_format == "json");
  if (discover->parsed()) return accel_dra::RunDiscover(f);
  if (webhook->parsed()) return accel_dra::RunWebhook(wf, f.driver_name);
  return accel_dra::RunPlugin(f);
}
