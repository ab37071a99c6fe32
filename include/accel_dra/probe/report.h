#pragma once
// accel-dra-probe's results and the files it writes from them.
//
// Promises:
//  - Rendering is deterministic: the same Report gives byte-identical files (no clock reads here).
//  - Every writer covers every check in Report::checks, in order.
//  - Every file opens with the test environment (Report::environment): Kubernetes server, per node
//    the kubelet, OS, kernel and container runtime, the device models with their driver and
//    runtime versions, and the word "simulated" wherever the devices publish `simulated: true`.
//  - RenderProductYaml uses the ids, levels and descriptions of the AI-conformance checklist of the
//    cluster's Kubernetes minor version (1.33–1.37; outside that range the nearest checklist, with
//    a comment saying so), lists only checklist ids this probe tests, and fills `status` from the
//    results: pass → Implemented, partial → Partially Implemented, fail → Not Implemented, skip →
//    "" (left to the submitter).
//  - A check this probe ran whose id the version's checklist does not list (dra_support from 1.36)
//    is named in a comment, never emitted as an entry (submitters must not add ids).
//  - Besides its own files, the results are written in the layout of the upstream automated suite
//    (kubernetes-sigs/ai-conformance `test/`, run with `go test -json` and gotestsum): a
//    results.json stream of test2json events, a junit.xml whose testsuite is the package and whose
//    testcases are Go-style test names (kUpstreamTestNames), and an e2e.log in `go test -v` form,
//    so they can be submitted beside the upstream suite's own files.

#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/common/status.h"

namespace accel_dra::probe {

// kPartial: the mechanism works but only in part, e.g. a sharing mode that the devices accept but
// do not enforce (containers see ACCEL_DEVICE_<ID>_TIMESLICE_ENFORCED=false). Never counted as a
// pass, never as a failure.
enum class CheckStatus { kPass, kFail, kSkip, kPartial };
std::string_view CheckStatusName(CheckStatus s);  // "pass", "fail", "skip", "partial"

// The checks, in the order they run.
inline constexpr std::string_view kCheckIds[] = {"dra_support", "driver_runtime_management",
                                                 "gpu_sharing", "secure_accelerator_access"};

struct Manifest {
  std::string title;  // "DeviceClass accel-dra-probe-xyz"
  std::string yaml;
};

// A raw output a reviewer can re-run: the exact command (kubectl ..., accel-dra-probe ...) and what
// it printed when the probe ran (an excerpt when `excerpt` says which part).
struct RawOutput {
  std::string command;
  std::string output;
  std::string excerpt;  // "" (all of it) or what was kept, e.g. "status.allocation"
};

struct CheckResult {
  std::string id;
  CheckStatus status = CheckStatus::kSkip;
  std::string message;                // one line; on failure it names the cause
  std::vector<std::string> ran;       // what was run (steps, CEL expressions)
  std::vector<Manifest> manifests;    // objects created for this check
  std::vector<std::string> observed;  // what was seen (evidence lines)
  std::vector<RawOutput> raw;         // raw outputs beside the verdict, in the order seen
  double seconds = 0;
};

// The devices of one node that look alike: same model, vendor, versions and simulation.
struct DeviceGroup {
  std::string product;               // productName ("" when not published)
  std::string vendor;                // vendor attribute
  std::string driver_version;        // driverVersion
  std::string runtime_version;       // runtimeVersion ("" when the driver does not publish it)
  bool simulated = false;            // simulated: true
  std::vector<std::string> devices;  // their names
};

// One node of the driver's pools, from Node.status.nodeInfo and the published devices.
struct NodeEnvironment {
  std::string name;
  std::string kubelet_version;
  std::string os_image;
  std::string kernel_version;
  std::string architecture;
  std::string container_runtime;  // nodeInfo.containerRuntimeVersion, e.g. containerd://2.2.9
  std::vector<DeviceGroup> devices;
};

struct Environment {
  std::vector<NodeEnvironment> nodes;
  bool Simulated() const;  // some device of some node is simulated
};

struct Report {
  std::string probe_version;
  std::string driver;
  std::string server_version;  // the apiserver's gitVersion, e.g. "v1.35.4"
  std::string namespace_;
  std::string started_at;  // RFC 3339, UTC
  double seconds = 0;
  bool interrupted = false;
  std::string command;  // how the probe was started (argv joined), for re-running it
  Environment environment;
  std::vector<std::string> cleanup;  // what the clean-up did / could not do
  std::vector<CheckResult> checks;
};

bool AllPassed(const Report& report);  // every check passed (and there is at least one)
// No check failed or was skipped (and there is at least one): passes and partials only.
bool NoneFailed(const Report& report);
// "PASS" (all passed), "PARTIAL" (none failed, some partial) or "FAIL".
std::string_view OverallResult(const Report& report);

struct ChecklistItem {
  std::string id;
  std::string category;  // "accelerators", "security"
  std::string level;     // "MUST", "SHOULD"
  std::string description;
};
// "v1.35.4" / "1.35" / "v1.35.0-rc.1+abc" → "1.35"; empty when unparseable.
std::string MinorVersion(std::string_view server_version);
// The checklist entries this probe can evidence for `minor` ("1.33".."1.37"), in checklist order.
// Sets *used to the checklist version actually used (the nearest one outside the range).
std::vector<ChecklistItem> ChecklistFor(std::string_view minor, std::string* used = nullptr);

// The command that re-runs one check: Report::command (or "accel-dra-probe run" when unknown)
// with --only <id>.
std::string RerunCommand(const Report& report, std::string_view check_id);

std::string RenderSummary(const Report& report);  // human text for stdout
std::string RenderJson(const Report& report);
std::string RenderJunit(
    const Report& report);  // junit.xml (gotestsum's fields; upstream_results.cc)
std::string RenderEvidence(const Report& report);  // Markdown
std::string RenderProductYaml(const Report& report);
// The upstream suite's layout (upstream_results.cc).
std::string RenderUpstreamJson(const Report& report);  // results.json (test2json events)
std::string RenderUpstreamLog(const Report& report);   // e2e.log (go test -v)
// The Go-style test name of a check id ("secure_accelerator_access" →
// "TestAccelDraSecureAcceleratorAccess"): distinct from the upstream suite's own test names.
std::string UpstreamTestName(std::string_view check_id);
// The package named in results.json and junit.xml.
inline constexpr std::string_view kUpstreamPackage = "accel-dra.dev/probe";

// File names written by WriteReports. junit.xml is in the upstream suite's fields (and keeps what
// was seen in each testcase's system-out).
inline constexpr std::string_view kReportJson = "report.json";
inline constexpr std::string_view kJunitXml = "junit.xml";
inline constexpr std::string_view kEvidenceMd = "evidence.md";
inline constexpr std::string_view kProductYaml = "PRODUCT.yaml";
inline constexpr std::string_view kResultsJson = "results.json";
inline constexpr std::string_view kE2eLog = "e2e.log";

// Writes the six files into `dir` (created if missing). The error names the file.
Status WriteReports(const Report& report, const std::string& dir);

}  // namespace accel_dra::probe
