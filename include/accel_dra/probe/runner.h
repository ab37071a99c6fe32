#pragma once
// accel-dra-probe's cluster mode: creates its own namespace and DeviceClasses, runs the selected
// conformance checks with real pods, and deletes everything it created.
//
// Promises:
//  - Every object it creates carries the label accel-dra.dev/probe=<namespace>; namespaced ones
//    live in that fresh namespace; cluster-scoped ones (DeviceClasses) are named after it.
//  - Clean-up (pods, then the namespace, then the DeviceClasses, waiting until the namespace is
//    gone, bounded by cleanup_timeout) runs after success, failure and interruption (`stop` set,
//    e.g. from SIGINT/SIGTERM: waits end within ~100 ms, the running check fails "interrupted",
//    the others are skipped). Report::cleanup says what was removed or what is left.
//  - Every wait is bounded by `timeout`; a failed check's message names the cause (the
//    scheduler's reason, the kubelet's event, the value that differed).
//  - The checks run one after another and each frees its devices before the next starts.
//
// Inside src/probe: runner.cc is the orchestration (order, results, clean-up), cluster_session.h
// the plumbing every check uses (objects, waits, clean-up), checks/ one file per check, and
// verdicts.h / cluster_inventory.h the pure pieces they judge with.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "accel_dra/common/status.h"
#include "accel_dra/probe/report.h"

namespace accel_dra::probe {

struct RunOptions {
  std::string kubeconfig;  // empty: $KUBECONFIG, in-cluster, ~/.kube/config
  std::string driver = "accel-dra.dev";
  std::string namespace_prefix = "accel-dra-probe";
  std::vector<std::string> only;  // check ids; empty: all
  std::string image = "docker.io/library/busybox:1.36";
  std::string pull_policy = "IfNotPresent";
  std::map<std::string, std::string> node_selector;
  std::string device_class;  // an existing DeviceClass for plain claims; empty: create one
  std::chrono::seconds timeout{60};
  std::chrono::seconds cleanup_timeout{90};
  int sharing_pods = 2;
  std::string probe_version;
  std::string command;  // how the probe was started (for the evidence's re-run commands)
};

using ProgressFn = std::function<void(const std::string&)>;

// Validates the options (check ids, sharing_pods, image): InvalidArgument naming the option.
Status ValidateRunOptions(const RunOptions& options);

// Runs the checks; fills *report (also on error, as far as it got). Returns non-OK only when the
// probe could not start (no kubeconfig, apiserver unreachable, namespace not creatable).
Status RunProbe(const RunOptions& options, const std::atomic<bool>* stop,
                const ProgressFn& progress, Report* report);

}  // namespace accel_dra::probe
