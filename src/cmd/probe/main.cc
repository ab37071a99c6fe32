// accel-dra-probe: conformance evidence for a cluster running accel-dra (run), and the in-pod
// inspection (inspect). Flag parsing and wiring only; see runner.h, inspect.h, report.h.

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include "accel_dra/build_info.h"
#include "accel_dra/common/log.h"
#include "accel_dra/probe/inspect.h"
#include "accel_dra/probe/report.h"
#include "accel_dra/probe/runner.h"

namespace {

std::atomic<bool> g_stop{false};

extern "C" void OnSignal(int /*sig*/) { g_stop.store(true); }

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: sleeps and polls notice quickly
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// --node-selector k=v[,k=v] into *selector; false (with a message on stderr) when an item is not
// key=value.
bool ParseNodeSelector(const std::string& flag, std::map<std::string, std::string>* selector) {
  std::string rest = flag;
  while (!rest.empty()) {
    std::string item = rest.substr(0, rest.find(','));
    rest = rest.find(',') == std::string::npos ? "" : rest.substr(rest.find(',') + 1);
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "error: --node-selector: \"" << item << "\" is not key=value\n";
      return false;
    }
    (*selector)[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return true;
}

// `arg` as one shell word (single-quoted unless it is plain).
std::string ShellWord(const std::string& arg) {
  bool plain = !arg.empty() && arg.find_first_not_of(
                                   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                   "@%_+=:,./-") == std::string::npos;
  if (plain) return arg;
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The command line that started the probe, without --only (the evidence adds one per check).
std::string CommandLine(int argc, char** argv) {
  std::string out = "accel-dra-probe";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--only") {
      ++i;
      continue;
    }
    if (a.rfind("--only=", 0) == 0) continue;
    out += " " + ShellWord(a);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "inspect") {
    return accel_dra::probe::InspectMain(argc - 1, argv + 1);
  }
  using accel_dra::probe::RunOptions;
  CLI::App app{"accel-dra-probe: Kubernetes AI-conformance evidence for the accel-dra DRA driver",
               "accel-dra-probe"};
  app.set_version_flag("--version", std::string(accel_dra::build_info::kVersion));
  app.require_subcommand(1);
  RunOptions opt;
  opt.driver = accel_dra::build_info::kDefaultDriverName;
  opt.probe_version = accel_dra::build_info::kVersion;
  std::string output, node_selector;
  int timeout = 60, cleanup_timeout = 90, verbosity = 0;
  auto* run = app.add_subcommand("run", "run the conformance checks against a cluster");
  run->add_option("--kubeconfig", opt.kubeconfig,
                  "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  run->add_option("--driver", opt.driver, "DRA driver name")->capture_default_str();
  run->add_option("--namespace", opt.namespace_prefix,
                  "prefix of the namespace the probe creates (a random suffix is added)")
      ->capture_default_str();
  run->add_option("--only", opt.only,
                  "run only these checks (dra_support, driver_runtime_management, gpu_sharing, "
                  "secure_accelerator_access)")
      ->delimiter(',');
  run->add_option("--image", opt.image, "busybox-like image for the test pods")
      ->capture_default_str();
  run->add_option("--image-pull-policy", opt.pull_policy, "Always, IfNotPresent or Never")
      ->check(CLI::IsMember({"Always", "IfNotPresent", "Never"}))
      ->capture_default_str();
  run->add_option("--node-selector", node_selector,
                  "only nodes with these labels (k=v[,k=v]) are tested");
  run->add_option("--device-class", opt.device_class,
                  "use this existing DeviceClass for plain claims instead of creating one");
  run->add_option("--timeout", timeout, "seconds for each wait (pod running, logs, scheduling)")
      ->capture_default_str();
  run->add_option("--cleanup-timeout", cleanup_timeout,
                  "seconds to wait for the probe's namespace to be deleted")
      ->capture_default_str();
  run->add_option("--output", output,
                  "directory for report.json, junit.xml, evidence.md, PRODUCT.yaml, "
                  "results.json and e2e.log");
  run->add_option("--sharing-pods", opt.sharing_pods, "pods sharing the time-sliced claim (2..16)")
      ->capture_default_str();
  run->add_flag("-v", verbosity, "verbose logging (repeat for more)");
  app.add_subcommand("inspect",
                     "print what this container can reach as RESULT: KEY=VALUE lines "
                     "[--root DIR]");
  CLI11_PARSE(app, argc, argv);
  accel_dra::InitLogging(verbosity);

  opt.command = CommandLine(argc, argv);
  opt.timeout = std::chrono::seconds(timeout);
  opt.cleanup_timeout = std::chrono::seconds(cleanup_timeout);
  if (!ParseNodeSelector(node_selector, &opt.node_selector)) return 2;
  if (auto st = accel_dra::probe::ValidateRunOptions(opt); !st.ok()) {
    std::cerr << "error: " << st.message() << "\n";
    return 2;
  }
  InstallSignalHandlers();
  accel_dra::probe::Report report;
  auto progress = [](const std::string& line) { std::cout << line << std::endl; };
  accel_dra::Status st = accel_dra::probe::RunProbe(opt, &g_stop, progress, &report);
  std::cout << "\n" << accel_dra::probe::RenderSummary(report);
  for (const auto& line : report.cleanup) std::cout << "cleanup: " << line << "\n";
  if (!output.empty()) {
    if (auto w = accel_dra::probe::WriteReports(report, output); !w.ok()) {
      std::cerr << "error: writing reports: " << w.message() << "\n";
      return 2;
    }
    std::cout << "reports written to " << output
              << "/{evidence.md,report.json,junit.xml,results.json,e2e.log,PRODUCT.yaml}\n";
  }
  if (!st.ok()) std::cerr << "error: " << st.message() << "\n";
  if (report.interrupted) return 130;
  if (!st.ok()) return 2;
  // Partial checks (an advisory sharing mode) are reported as such, not as failures.
  return accel_dra::probe::NoneFailed(report) ? 0 : 1;
}
