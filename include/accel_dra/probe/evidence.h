#pragma once
// What the probe's evidence shows of the cluster besides its verdicts: the test environment and
// raw outputs a reviewer can re-run. Pure functions of listed objects (no cluster), unit-tested
// with canned objects; the cluster session lists the objects and records the outputs.
//
// Promises:
//  - DescribeEnvironment covers every node with a pool of the driver (complete or not), in name
//    order, from Node.status.nodeInfo, and groups that node's devices (newest generation) by
//    product, vendor, driverVersion, runtimeVersion and `simulated`; attributes are read by name
//    (bare or "<driver>/"-qualified), so attributes a newer driver adds (runtimeVersion) show up
//    without code here knowing where they come from.
//  - The raw outputs name the kubectl command that prints the same object, and say which part of
//    it they keep (`excerpt`); their output is JSON, indented, at most kRawOutputLimit bytes
//    (longer ones end with a line saying how much was cut).

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/probe/cluster_inventory.h"
#include "accel_dra/probe/report.h"

namespace accel_dra::probe {

inline constexpr size_t kRawOutputLimit = 16 * 1024;

Environment DescribeEnvironment(const ClusterInventory& inventory, std::string_view driver);

// Plain-text lines describing the environment (for the summary, logs, JUnit and YAML comments):
// the Kubernetes server, one line per node, one per device group, and a line saying the devices
// are simulated when some are.
std::vector<std::string> EnvironmentLines(const Report& report);

// `kubectl get resourceslices --field-selector spec.driver=<driver> -o json`: per slice its name,
// node, pool and devices (name and attributes).
RawOutput SlicesOutput(const std::vector<nlohmann::json>& slices, std::string_view driver);
// `kubectl get resourceclaim <name> -n <ns> -o json`: name and status (allocation, reservedFor).
RawOutput ClaimOutput(const nlohmann::json& claim);
// `kubectl logs -n <ns> <pod> -c <container>`: the log as it was read.
RawOutput LogsOutput(std::string_view ns, std::string_view pod, std::string_view container,
                     std::string_view log);
// `kubectl get pod <pod> -n <ns> -o jsonpath=...`: the PodScheduled condition's message.
RawOutput SchedulingOutput(std::string_view ns, std::string_view pod, std::string_view message);

// Adds `out` to c.raw, replacing an earlier output of the same command (the newest state counts).
void RecordRaw(CheckResult& c, RawOutput out);

}  // namespace accel_dra::probe
