#pragma once
// accel-dra-probe's results and the files it writes from them.
//
// Promises:
//  - Rendering is deterministic: the same Report gives byte-identical files (no clock reads here).
//  - Every writer covers every check in Report::checks, in order.
//  - RenderProductYaml uses the ids, levels and descriptions of the AI-conformance checklist of the
//    cluster's Kubernetes minor version (1.33–1.36; outside that range the nearest checklist, with
//    a comment saying so), lists only checklist ids this probe tests, and fills `status` from the
//    results: pass → Implemented, fail → Not Implemented, skip → "" (left to the submitter).
//  - A check this probe ran whose id the version's checklist does not list (dra_support in 1.36) is
//    named in a comment, never emitted as an entry (submitters must not add ids).

#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/common/status.h"

namespace accel_dra::probe {

enum class CheckStatus { kPass, kFail, kSkip };
std::string_view CheckStatusName(CheckStatus s);  // "pass", "fail", "skip"

// The checks, in the order they run.
inline constexpr std::string_view kCheckIds[] = {"dra_support", "driver_runtime_management",
                                                 "gpu_sharing", "secure_accelerator_access"};

struct Manifest {
  std::string title;  // "DeviceClass accel-dra-probe-xyz"
  std::string yaml;
};

struct CheckResult {
  std::string id;
  CheckStatus status = CheckStatus::kSkip;
  std::string message;                // one line; on failure it names the cause
  std::vector<std::string> ran;       // what was run (steps, CEL expressions)
  std::vector<Manifest> manifests;    // objects created for this check
  std::vector<std::string> observed;  // what was seen (evidence lines)
  double seconds = 0;
};

struct Report {
  std::string probe_version;
  std::string driver;
  std::string server_version;  // the apiserver's gitVersion, e.g. "v1.35.4"
  std::string namespace_;
  std::string started_at;  // RFC 3339, UTC
  double seconds = 0;
  bool interrupted = false;
  std::vector<std::string> cleanup;  // what the clean-up did / could not do
  std::vector<CheckResult> checks;
};

bool AllPassed(const Report& report);  // every check passed (and there is at least one)

struct ChecklistItem {
  std::string id;
  std::string category;  // "accelerators", "security"
  std::string level;     // "MUST", "SHOULD"
  std::string description;
};
// "v1.35.4" / "1.35" / "v1.35.0-rc.1+abc" → "1.35"; empty when unparseable.
std::string MinorVersion(std::string_view server_version);
// The checklist entries this probe can evidence for `minor` ("1.33".."1.36"), in checklist order.
// Sets *used to the checklist version actually used (the nearest one outside the range).
std::vector<ChecklistItem> ChecklistFor(std::string_view minor, std::string* used = nullptr);

std::string RenderSummary(const Report& report);  // human text for stdout
std::string RenderJson(const Report& report);
std::string RenderJunit(const Report& report);
std::string RenderEvidence(const Report& report);  // Markdown
std::string RenderProductYaml(const Report& report);

// File names written by WriteReports.
inline constexpr std::string_view kReportJson = "report.json";
inline constexpr std::string_view kJunitXml = "junit.xml";
inline constexpr std::string_view kEvidenceMd = "evidence.md";
inline constexpr std::string_view kProductYaml = "PRODUCT.yaml";

// Writes the four files into `dir` (created if missing). The error names the file.
Status WriteReports(const Report& report, const std::string& dir);

}  // namespace accel_dra::probe
