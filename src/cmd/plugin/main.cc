// accel-dra-plugin: the per-node DRA driver process. Flag parsing and wiring only.

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
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
#include "accel_dra/discovery/events.h"
#include "accel_dra/discovery/health.h"
#include "accel_dra/discovery/manager.h"
#include "accel_dra/discovery/node_runtime.h"
#include "accel_dra/discovery/nvml.h"
#include "accel_dra/discovery/pci.h"
#include "accel_dra/discovery/simulated.h"
#include "accel_dra/kube/client.h"
#include "accel_dra/kubelet/plugin_server.h"
#include "accel_dra/node/node_watch.h"
#include "accel_dra/slices/publisher.h"
#include "accel_dra/slices/slices.h"

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
  std::string healthcheck_address = "0.0.0.0";
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
  bool device_taints = false;
  std::string output = "yaml";
  std::string inspect_tool;
  bool testing_expose_all_devices = false;
  std::string nvidia_smi = "nvidia-smi";
};

// --inspect-tool must name an executable regular file (checked at start, not at the first
// prepare, so a typo fails the rollout instead of every pod).
Status CheckInspectTool(const std::string& path) {
  struct stat st {};
  if (path.empty() || path.front() != '/') {
    return InvalidArgument("--inspect-tool " + path + ": must be an absolute host path");
  }
  if (::stat(path.c_str(), &st) != 0) {
    return ErrnoStatus("--inspect-tool " + path, errno);
  }
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgument("--inspect-tool " + path + ": not a regular file");
  }
  if (::access(path.c_str(), X_OK) != 0 || (st.st_mode & 0111) == 0) {
    return InvalidArgument("--inspect-tool " + path + ": not executable (chmod +x it)");
  }
  return Status();
}

// The latest device snapshot, shared between the discovery loop and gRPC threads.
class InventoryHolder {
 public:
  void Set(model::InventoryPtr inv) {
    std::lock_guard<std::mutex> lock(mu_);
    inv_ = std::move(inv);
  }
  model::InventoryPtr Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return inv_;
  }

 private:
  mutable std::mutex mu_;
  model::InventoryPtr inv_;
};

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
  if (!f.simulate_profile.empty()) {
    auto content = env->ReadFile(f.simulate_profile);
    if (!content.ok()) {
      return content.status().WithContext("cannot read --simulate-profile");
    }
    ASSIGN_OR_RETURN(auto profile, discovery::ParseSimProfile(*content, f.simulate_profile));
    mgr.AddBackend(std::make_unique<discovery::SimulatedBackend>(env, node, std::move(profile),
                                                                 f.simulate_profile));
  } else if (f.simulate >= 0) {
    mgr.AddBackend(std::make_unique<discovery::SimulatedBackend>(
        env, node, discovery::DefaultSimProfile(f.simulate)));
  }
  if (mgr.empty()) {
    // Real hardware: PCI/sysfs under --host-root, enriched with NVML when it is present.
    discovery::PciOptions popts;
    popts.ids_file = f.pci_ids_file;
    auto pci = std::make_unique<discovery::PciBackend>(env, HostRoot(f.host_root), popts);
    if (f.no_nvml) {
      mgr.AddBackend(std::move(pci));
    } else {
      auto enriched =
          std::make_unique<discovery::NvmlEnrichedBackend>(std::move(pci), f.nvml_library);
      if (nvml != nullptr) *nvml = enriched.get();
      mgr.AddBackend(std::move(enriched));
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

int RunDiscover(const Flags& f) {
  std::string node = f.node_name.empty() ? Hostname() : f.node_name;
  auto devices = MakeDevices(f, node);
  if (!devices.ok()) return Fail(devices.status().message());
  // No Node here: the node-level attributes without the container runtime ones.
  auto inventory = discovery::WithNodeAttributes(
      *devices->Refresh(), discovery::DriverOnlyAttributes(), slices::kMaxAttributesAndCapacities);
  auto pool = slices::BuildPool(inventory, PoolFor(f, node));
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

int RunPlugin(const Flags& f) {
  if (f.node_name.empty()) {
    return Fail("--node-name (or NODE_NAME) is required: the name of the Node this plugin runs on");
  }
  auto t0 = std::chrono::steady_clock::now();
  if (!f.inspect_tool.empty()) {
    if (Status st = CheckInspectTool(f.inspect_tool); !st.ok()) return Fail(st.message());
  }
  if (f.testing_expose_all_devices) {
    spdlog::warn(
        "TESTING ONLY: --testing-expose-all-devices is set: every claim's containers get the "
        "device nodes of ALL devices of this node, also devices they did not claim. Device "
        "isolation is broken on purpose; never use this outside tests.");
  }
  // SIGINT/SIGTERM are blocked in every thread (main()); the main loop reads them from here.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sigfd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) return Fail("signalfd: " + std::string(std::strerror(errno)));
  auto events_mode = discovery::ParseDeviceEventsMode(f.device_events);
  if (!events_mode.ok()) return Fail(events_mode.status().message());
  discovery::NvmlEnrichedBackend* nvml = nullptr;
  auto devices = MakeDevices(f, f.node_name, &nvml);
  if (!devices.ok()) return Fail(devices.status().message());

  auto config = kube::ResolveConfig(f.kubeconfig);
  if (!config.ok()) return Fail(config.status().message());
  config->user_agent = std::string("accel-dra-plugin/") + build_info::kVersion;
  auto client = kube::Client::Create(*config);
  if (!client.ok()) return Fail(client.status().message());
  kube::ResourceApi api(client->get());

  // Wait (bounded) for the apiserver: a plugin often starts before the network is ready.
  auto version = kube::WaitForVersion(
      api, t0 + std::chrono::milliseconds(static_cast<int64_t>(f.startup_timeout_s * 1000)));
  if (!version.ok()) {
    return Fail("cannot use the Kubernetes API at " + config->server + ": " +
                version.status().message());
  }
  spdlog::info("accel-dra-plugin {} driver={} node={} resource.k8s.io/{}", build_info::kVersion,
               f.driver_name, f.node_name, *version);

  slices::SlicePublisher::Options popts;
  popts.pool = PoolFor(f, f.node_name);
  auto node = api.GetNode(f.node_name);
  if (node.ok() && node->contains("/metadata/uid"_json_pointer)) {
    popts.pool.node_uid = (*node)["metadata"]["uid"].get<std::string>();
  } else {
    spdlog::warn("cannot read Node {} ({}); slices are published without an owner reference",
                 f.node_name, node.ok() ? "no uid" : node.status().message());
  }
  InventoryHolder inventory;
  // Device events (hotplug) for hardware discovery; simulated devices only poll their profile.
  const bool hardware = f.simulate < 0 && f.simulate_profile.empty();
  std::unique_ptr<discovery::DeviceEventSource> events;
  if (hardware) events = discovery::OpenDeviceEvents(*events_mode, HostRoot(f.host_root));
  inventory.Set(devices->Refresh());
  auto health = std::make_shared<discovery::DeviceHealthTracker>(
      Env::Default(), HostRoot(f.host_root), f.node_name);
  // Re-checks device health (a few stat()s); main loop thread only. True when it changed.
  auto check_health = [&]() -> bool {
    const uint64_t before = health->generation();
    std::optional<discovery::NvmlInfo> nv;
    if (nvml != nullptr) nv = nvml->last_info();
    health->Update(*inventory.Get(), nv ? &*nv : nullptr);
    return health->generation() != before;
  };
  check_health();
  // What is published: the inventory, with a taint on unhealthy devices when --device-taints.
  auto with_health = [&]() -> model::InventoryPtr {
    auto inv = inventory.Get();
    if (!f.device_taints) return inv;
    return discovery::WithUnhealthyTaints(inv, health->Unhealthy(), f.driver_name);
  };

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
  prep_opts.testing_expose_all_devices = f.testing_expose_all_devices;
  prep_opts.nvidia_smi = f.nvidia_smi;
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

  slices::SlicePublisher publisher(&api, popts);
  // What is published: the discovered devices plus the node-level attributes (container runtime,
  // cdiEnabled, sharingMode), composed under one lock so the latest of both always wins.
  std::mutex publish_mu;
  discovery::NodeAttributes node_attrs = discovery::DriverOnlyAttributes();
  std::set<std::string> left_out_logged;
  auto publish = [&] {
    std::lock_guard<std::mutex> lock(publish_mu);
    std::vector<std::string> left_out;
    auto composed = std::make_shared<const model::Inventory>(discovery::WithNodeAttributes(
        *with_health(), node_attrs, slices::kMaxAttributesAndCapacities, &left_out));
    for (const auto& name : left_out) {
      if (left_out_logged.insert(name).second) {
        spdlog::warn(
            "attribute {} left out of some devices: they already have 32 attributes and "
            "capacities",
            name);
      }
    }
    publisher.Update(std::move(composed));
  };
  node::NodeAttributeWatcher::Options wopts;
  wopts.node_name = f.node_name;
  wopts.containerd_config = f.containerd_config;
  wopts.host_root = HostRoot(f.host_root);
  node::NodeAttributeWatcher node_watcher(&api, env, wopts,
                                          [&](const discovery::NodeAttributes& attrs) {
                                            {
                                              std::lock_guard<std::mutex> lock(publish_mu);
                                              node_attrs = attrs;
                                            }
                                            publish();
                                          });
  node_watcher.Start();  // reads the Node once: the first slices carry its attributes
  publisher.Start();
  publish();
  std::thread announce([&publisher, t0] {
    if (publisher.WaitInSync(std::chrono::minutes(10))) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
      spdlog::info("first ResourceSlices published {} ms after start", ms);
    }
  });

  kubelet::PluginServerOptions sopts;
  sopts.driver_name = f.driver_name;
  sopts.registrar_dir = f.registrar_dir;
  sopts.plugins_dir = f.plugins_dir;
  sopts.pod_uid = f.pod_uid;
  sopts.preparer = preparer;
  sopts.healthcheck_port = f.healthcheck_port;
  sopts.healthcheck_address = f.healthcheck_address;
  sopts.health_source = health;
  kubelet::PluginServer server(sopts);
  if (Status st = server.Start(); !st.ok()) {
    node_watcher.Stop();
    publisher.Stop();
    announce.join();
    return Fail(st.message());
  }
  spdlog::info("serving kubelet: registration {} DRA {}", server.paths().registration_socket,
               server.paths().dra_socket);

  // The main loop: shutdown signals (signalfd; they are blocked in every thread), device events,
  // cheap change checks every --rediscover-interval, a full rescan every --rescan-interval (every
  // --rediscover-interval without an event source), the stale-claim sweep.
  using Clock = std::chrono::steady_clock;
  auto ms = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
  const auto check_every = ms(f.rediscover_interval_s);
  const auto rescan_every = hardware && !events ? check_every : ms(f.rescan_interval_s);
  const auto cleanup_every = ms(f.cleanup_interval_s);
  auto next_check = Clock::now() + check_every;
  auto next_rescan = Clock::now() + rescan_every;
  auto next_cleanup = Clock::now() + cleanup_every;
  while (true) {
    auto next = std::min({next_check, next_rescan, next_cleanup});
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
    pollfd fds[2] = {{sigfd, POLLIN, 0}, {events ? events->fd() : -1, POLLIN, 0}};
    int n = ::poll(fds, events ? 2 : 1, static_cast<int>(std::max<int64_t>(0, wait.count())));
    if (n > 0 && (fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo si{};
      if (::read(sigfd, &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
        spdlog::info("received {}, shutting down", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
        break;
      }
    }
    bool rescan = false;
    if (n > 0 && events && (fds[1].revents & POLLIN) != 0) {
      // Let a burst settle (a hotplug is many files and nodes), then rescan once.
      rescan = discovery::WaitForDeviceEvent(*events, std::chrono::milliseconds(0));
      if (rescan) LOG_V(2, "device event: rescanning");
    }
    auto now = Clock::now();
    bool tick = now >= next_check;
    if (tick) {
      rescan = devices->MaybeChanged() || rescan;
      next_check = now + check_every;
    }
    if (now >= next_rescan) {
      rescan = true;
      next_rescan = now + rescan_every;
    }
    if (rescan) {
      inventory.Set(devices->Refresh());
      if (events) events->Rearm();
    }
    // Health is re-checked on every rescan and every check tick; the slices are recomposed only
    // when the inventory or a device's health changed.
    bool health_changed = (rescan || tick) && check_health();
    if (rescan || health_changed) publish();
    if (now >= next_cleanup) {
      preparer->CleanupStale();
      next_cleanup = Clock::now() + cleanup_every;
    }
  }
  ::close(sigfd);
  server.Stop();
  node_watcher.Stop();
  publisher.Stop();
  announce.join();
  if (f.delete_slices_on_exit) {
    Status st = publisher.DeleteAll();
    if (!st.ok()) return Fail(st.message());
  }
  return 0;
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

}  // namespace
}  // namespace accel_dra

int main(int argc, char** argv) {
  using accel_dra::Flags;
  // Block the shutdown signals before any thread starts; the main loop waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  Flags f;
  CLI::App app{"accel-dra-plugin: Kubernetes DRA driver for accelerators", "accel-dra-plugin"};
  app.set_version_flag("--version", std::string(accel_dra::build_info::kVersion));
  app.add_option("--driver-name", f.driver_name, "DRA driver name")
      ->envname("DRIVER_NAME")
      ->capture_default_str();
  app.add_option("--node-name", f.node_name, "name of the Node this plugin runs on")
      ->envname("NODE_NAME");
  app.add_option("--kubeconfig", f.kubeconfig,
                 "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  app.add_option("--cdi-root", f.cdi_root, "directory for CDI specs")
      ->envname("CDI_ROOT")
      ->capture_default_str();
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
  app.add_option("--cleanup-interval", f.cleanup_interval_s,
                 "seconds between checks for prepared claims whose ResourceClaim is gone")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--healthcheck-port", f.healthcheck_port,
                 "port of the gRPC health service (-1 disables)")
      ->envname("HEALTHCHECK_PORT")
      ->capture_default_str();
  app.add_option("--healthcheck-address", f.healthcheck_address,
                 "address of the gRPC health service (a kubelet probe needs the pod's address)")
      ->envname("HEALTHCHECK_ADDRESS")
      ->capture_default_str();
  app.add_option("-v,--v", f.verbosity, "log verbosity (klog style)")->capture_default_str();
  app.add_option("--log-format", f.log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--simulate", f.simulate, "publish N simulated devices")
      ->envname("ACCEL_DRA_SIMULATE")
      ->check(CLI::Range(0, 100000));
  app.add_option("--simulate-profile", f.simulate_profile,
                 "YAML file describing simulated devices (re-read when it changes)")
      ->envname("ACCEL_DRA_SIMULATE_PROFILE");
  app.add_option("--host-root", f.host_root, "where the host's /sys, /dev and /proc are")
      ->envname("HOST_ROOT")
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
  app.add_flag("--delete-slices-on-exit", f.delete_slices_on_exit,
               "delete this node's ResourceSlices on a clean shutdown");
  app.add_option("--startup-timeout", f.startup_timeout_s,
                 "seconds to wait for the apiserver at start")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--rediscover-interval", f.rediscover_interval_s,
                 "seconds between cheap device-change checks")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--inspect-tool", f.inspect_tool,
                 "host path of a static inspect binary that every claim's containers get "
                 "read-only at " +
                     std::string(accel_dra::model::kInspectToolContainerPath))
      ->envname("ACCEL_DRA_INSPECT_TOOL");
  app.add_option("--nvidia-smi", f.nvidia_smi,
                 "nvidia-smi program that applies TimeSlicing intervals to NVIDIA GPUs (searched "
                 "on PATH unless it contains a '/')")
      ->envname("NVIDIA_SMI")
      ->capture_default_str();
  // Hidden (empty group): a deliberate isolation breach for the conformance probe's negative test.
  app.add_flag("--testing-expose-all-devices", f.testing_expose_all_devices,
               "TESTING ONLY: give every claim the device nodes of all devices")
      ->group("");
  app.add_option("--rescan-interval", f.rescan_interval_s,
                 "seconds between full device rescans, a safety net for missed device events")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--device-events", f.device_events,
                 "how device hotplug is noticed: udev (netlink monitor), inotify (watch the tree "
                 "under --host-root), poll (rescan every --rediscover-interval), auto (udev when "
                 "--host-root is /, else inotify; falls back to poll)")
      ->envname("DEVICE_EVENTS")
      ->check(CLI::IsMember({"auto", "udev", "inotify", "poll"}))
      ->capture_default_str();
  app.add_flag("--device-taints", f.device_taints,
               "publish unhealthy devices with a NoSchedule taint <driver>/unhealthy=<reason> "
               "(needs the DRADeviceTaints feature gate, alpha in Kubernetes 1.35)");
  auto* discover = app.add_subcommand(
      "discover", "print the ResourceSlices this node would publish (no cluster needed)");
  discover->fallthrough();  // global flags may follow the subcommand
  discover->add_option("-o,--output", f.output, "yaml or json")
      ->check(CLI::IsMember({"yaml", "json"}))
      ->capture_default_str();

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
  return accel_dra::RunPlugin(f);
}
