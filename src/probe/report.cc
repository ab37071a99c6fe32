// Report rendering: summary, JSON, JUnit XML, Markdown evidence, PRODUCT.yaml fragment.

#include "accel_dra/probe/report.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "accel_dra/common/strings.h"
#include "accel_dra/probe/evidence.h"
#include "report_text.h"

namespace accel_dra::probe {
namespace {

using Json = nlohmann::json;

constexpr const char* kDraDescription =
    "Support Dynamic Resource Allocation (DRA) APIs to enable more flexible and fine-grained "
    "resource requests beyond simple counts.";
constexpr const char* kDriverRuntimeDescription =
    "Provide a verifiable mechanism for ensuring that compatible accelerator drivers and "
    "corresponding container runtime configurations are correctly installed and maintained on "
    "nodes with accelerators. Once the accelerator supports exposing driver and runtime version "
    "information as part of DRA, then the platform should use the DRA mechanism for verification.";
constexpr const char* kGpuSharingDescription =
    "For accelerators that support static GPU sharing, provide well-defined mechanisms for at "
    "least one GPU sharing strategy to improve utilization for workloads that do not require a "
    "full dedicated GPU. If hardware-level partitioning is supported, then these fractional GPU "
    "resources should be exposed as schedulable resources. If software-based sharing (e.g. "
    "time-slicing) is supported, then oversubscription of GPUs should be allowed. Forward-looking: "
    "Once the accelerator supports static GPU sharing as part of DRA, the platform should expose "
    "the DRA mechanism to allow users to leverage static GPU sharing. Once the accelerator "
    "supports dynamic GPU sharing as part of DRA and the partitionable devices feature is GA, the "
    "platform should expose the DRA mechanism to allow users to leverage dynamic GPU sharing.";
constexpr const char* kSecureAccessDescription =
    "Ensure that access to accelerators from within containers is properly isolated and mediated "
    "by the Kubernetes resource management framework (device plugin or DRA) and container "
    "runtime, preventing unauthorized access or interference between workloads.";

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The length of the well-formed UTF-8 sequence at the start of `s` and its code point, or 0 when
// it is not one (invalid, overlong, a surrogate, above U+10FFFF, truncated).
size_t DecodeUtf8(std::string_view s, uint32_t* cp) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n = 0;
  uint32_t min = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2, *cp = c & 0x1F, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, *cp = c & 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, *cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    if ((b(i) & 0xC0) != 0x80) return 0;
    *cp = (*cp << 6) | (b(i) & 0x3F);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return 0;
  return n;
}

// `s` as well-formed UTF-8 holding only characters XML 1.0 allows: anything else (invalid bytes,
// control characters but tab, newline and carriage return, U+FFFE, U+FFFF) becomes U+FFFD.
// `map` may replace an allowed character by other text (it returns false to keep it as is).
template <typename Map>
std::string CleanText(std::string_view s, Map map) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    uint32_t cp = 0;
    size_t n = DecodeUtf8(s, &cp);
    const bool allowed = n > 0 && (cp >= 0x20 || cp == '\t' || cp == '\n' || cp == '\r') &&
                         cp != 0xFFFE && cp != 0xFFFF;
    if (!allowed) {
      out += kReplacement;
      s.remove_prefix(n > 0 ? n : 1);
      continue;
    }
    if (!map(cp, out)) out.append(s.substr(0, n));
    s.remove_prefix(n);
  }
  return out;
}

}  // namespace

std::string XmlEscape(std::string_view s) {
  return CleanText(s, [](uint32_t cp, std::string& out) {
    switch (cp) {
      case '&':
        out += "&amp;";
        return true;
      case '<':
        out += "&lt;";
        return true;
      case '>':
        out += "&gt;";
        return true;
      case '"':
        out += "&quot;";
        return true;
      case '\'':
        out += "&apos;";
        return true;
      case '\t':
        out += "&#9;";
        return true;
      case '\n':
        out += "&#10;";
        return true;
      case '\r':
        out += "&#13;";
        return true;
      default:
        return false;
    }
  });
}

namespace {

// Inline Markdown text from any bytes (messages, steps: they carry what the cluster and the
// containers said): one line, nothing a renderer reads as markup or HTML. Markdown's inline
// characters are backslash-escaped, HTML's as entities. `line_start`: the text begins a line or a
// list item, so what would open a block there (heading, list, setext underline) is escaped too.
std::string MdText(std::string_view s, bool line_start = false) {
  std::string out = CleanText(s, [](uint32_t cp, std::string& o) {
    switch (cp) {
      case '\\':
      case '`':
      case '*':
      case '_':
      case '[':
      case ']':
      case '|':
      case '~':
        o += '\\';
        o += static_cast<char>(cp);
        return true;
      case '&':
        o += "&amp;";
        return true;
      case '<':
        o += "&lt;";
        return true;
      case '>':
        o += "&gt;";
        return true;
      case '\t':
      case '\n':
      case '\r':
        o += ' ';
        return true;
      default:
        return false;
    }
  });
  if (!line_start) return out;
  if (!out.empty() && (out[0] == '#' || out[0] == '-' || out[0] == '+' || out[0] == '=')) {
    out.insert(0, 1, '\\');
  }
  size_t digits = 0;
  while (digits < out.size() && out[digits] >= '0' && out[digits] <= '9') ++digits;
  if (digits > 0 && digits < out.size() && (out[digits] == '.' || out[digits] == ')')) {
    out.insert(digits, 1, '\\');
  }
  return out;
}

size_t LongestBacktickRun(std::string_view s) {
  size_t longest = 0;
  for (size_t i = 0, run = 0; i < s.size(); ++i) {
    run = s[i] == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  return longest;
}

// An inline code span holding `s` literally (container output): one line, fenced with more
// backticks than any run inside it. In a table, `|` still splits the cell, so it is escaped.
std::string MdCode(std::string_view s, bool in_table = false) {
  std::string text = CleanText(s, [in_table](uint32_t cp, std::string& o) {
    if (cp == '\t' || cp == '\n' || cp == '\r') {
      o += ' ';
      return true;
    }
    if (cp == '|' && in_table) {
      o += "\\|";
      return true;
    }
    return false;
  });
  const std::string fence(LongestBacktickRun(text) + 1, '`');
  const bool pad = !text.empty() && (text.front() == '`' || text.back() == '`');
  return fence + (pad ? " " : "") + text + (pad ? " " : "") + fence;
}

// A fenced code block's fence for `body`: longer than any run of backticks in it.
std::string FenceFor(std::string_view body) {
  return std::string(std::max<size_t>(3, LongestBacktickRun(body) + 1), '`');
}

}  // namespace

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", s);
  return buf;
}

namespace {

const ChecklistItem* FindItem(const std::vector<ChecklistItem>& items, std::string_view id) {
  for (const auto& i : items) {
    if (i.id == id) return &i;
  }
  return nullptr;
}

std::string ProductStatus(CheckStatus s) {
  switch (s) {
    case CheckStatus::kPass:
      return "Implemented";
    case CheckStatus::kPartial:
      return "Partially Implemented";
    case CheckStatus::kFail:
      return "Not Implemented";
    case CheckStatus::kSkip:
      return "";
  }
  return "";
}

// The raw outputs of a check: each command and what it printed, fenced.
void RenderRawOutputs(const Report& r, const CheckResult& c, std::ostringstream& o) {
  o << "\n### Raw outputs\n\nRe-run this check: " << MdCode(RerunCommand(r, c.id)) << "\n";
  if (c.raw.empty()) {
    o << "\n(no raw output was captured)\n";
    return;
  }
  o << "\nWhat these commands printed during the run (namespace " << MdCode(r.namespace_)
    << ", deleted afterwards: run them while a re-run's pods exist, or apply the manifests "
       "above):\n";
  for (const auto& x : c.raw) {
    const std::string fence = FenceFor(x.output);
    o << "\nCommand: " << MdCode(x.command);
    if (!x.excerpt.empty()) o << " (excerpt: " << MdText(x.excerpt) << ")";
    // Literal in the block; a carriage return would end a line for some renderers: a newline.
    o << "\n\n"
      << fence << "\n"
      << CleanText(x.output, [](uint32_t cp, std::string& out) {
           if (cp != '\r') return false;
           out += '\n';
           return true;
         });
    if (!x.output.empty() && x.output.back() != '\n') o << "\n";
    o << fence << "\n";
  }
}

// One check's section of evidence.md. Its id is one of ours (kCheckIds): the heading and anchor.
void RenderEvidenceSection(const Report& r, const CheckResult& c, const ChecklistItem* item,
                           const std::string& used, std::ostringstream& o) {
  o << "\n<a id=\"" << c.id << "\"></a>\n## " << c.id << "\n\n";
  if (item != nullptr) {
    o << "**Level (v" << used << "):** " << item->level << "\n\n> " << item->description << "\n\n";
  } else {
    o << "*Not listed in the v" << used << " checklist; reported for completeness.*\n\n";
  }
  o << "**Result:** " << CheckStatusName(c.status) << " in " << Seconds(c.seconds) << " s";
  if (!c.message.empty()) o << " — " << MdText(c.message);
  if (r.environment.Simulated()) o << " (on simulated devices)";
  o << "\n\n### What was run\n\n";
  if (c.ran.empty()) o << "(nothing)\n";
  for (const auto& s : c.ran) o << "- " << MdText(s, /*line_start=*/true) << "\n";
  for (const auto& m : c.manifests) {
    const std::string fence = FenceFor(m.yaml);
    o << "\n<details><summary>" << XmlEscape(m.title) << "</summary>\n\n"
      << fence << "yaml\n"
      << m.yaml;
    if (!m.yaml.empty() && m.yaml.back() != '\n') o << "\n";
    o << fence << "\n\n</details>\n";
  }
  o << "\n### What was seen\n\n";
  if (c.observed.empty()) o << "(nothing)\n";
  for (const auto& s : c.observed) o << "- " << MdCode(s) << "\n";
  RenderRawOutputs(r, c, o);
}

// The test environment: what ran the checks, first in evidence.md.
void RenderEnvironment(const Report& r, std::ostringstream& o) {
  o << "## Test environment\n\n";
  if (r.environment.Simulated()) {
    o << "**Devices: simulated.** The devices below publish `simulated: true`: no real "
         "accelerator backs them; their device nodes are stand-ins. This evidence shows the "
         "driver's and the cluster's behaviour, not an accelerator's.\n\n";
  }
  o << "| | |\n|---|---|\n";
  o << "| Kubernetes server | " << MdText(r.server_version.empty() ? "(unknown)" : r.server_version)
    << " |\n";
  if (r.environment.nodes.empty()) {
    o << "| Nodes | none publishes devices of the driver |\n";
  }
  for (const auto& n : r.environment.nodes) {
    o << "| Node " << MdCode(n.name, true) << " | kubelet " << MdText(n.kubelet_version) << ", "
      << MdText(n.os_image) << ", kernel " << MdText(n.kernel_version) << ", "
      << MdText(n.architecture) << ", container runtime " << MdText(n.container_runtime) << " |\n";
  }
  o << "\n| Node | Devices | Model | Vendor | Driver version | Runtime version | Simulated |\n"
       "|---|---|---|---|---|---|---|\n";
  for (const auto& n : r.environment.nodes) {
    for (const auto& g : n.devices) {
      auto cell = [](const std::string& v) { return v.empty() ? std::string("—") : MdText(v); };
      o << "| " << MdCode(n.name, true) << " | " << g.devices.size() << " ("
        << MdText(Join(g.devices, ", ")) << ") | " << cell(g.product) << " | " << cell(g.vendor)
        << " | " << cell(g.driver_version) << " | " << cell(g.runtime_version) << " | "
        << (g.simulated ? "**simulated**" : "no") << " |\n";
    }
  }
  o << "\nVersions are the devices' published attributes (`driverVersion`, `runtimeVersion`); "
       "the node's from `Node.status.nodeInfo`.\n\n";
}

}  // namespace

std::string_view CheckStatusName(CheckStatus s) {
  switch (s) {
    case CheckStatus::kPass:
      return "pass";
    case CheckStatus::kPartial:
      return "partial";
    case CheckStatus::kFail:
      return "fail";
    case CheckStatus::kSkip:
      return "skip";
  }
  return "?";
}

bool AllPassed(const Report& report) {
  return !report.checks.empty() &&
         std::all_of(report.checks.begin(), report.checks.end(),
                     [](const CheckResult& c) { return c.status == CheckStatus::kPass; });
}

bool NoneFailed(const Report& report) {
  return !report.checks.empty() &&
         std::all_of(report.checks.begin(), report.checks.end(), [](const CheckResult& c) {
           return c.status == CheckStatus::kPass || c.status == CheckStatus::kPartial;
         });
}

std::string_view OverallResult(const Report& report) {
  return AllPassed(report) ? "PASS" : NoneFailed(report) ? "PARTIAL" : "FAIL";
}

std::string MinorVersion(std::string_view v) {
  if (!v.empty() && v[0] == 'v') v.remove_prefix(1);
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
    return std::string(v.substr(start, i - start));
  };
  std::string major = digits();
  if (major.empty() || i >= v.size() || v[i] != '.') return "";
  ++i;
  std::string minor = digits();
  if (minor.empty()) return "";
  return major + "." + minor;
}

std::vector<ChecklistItem> ChecklistFor(std::string_view minor, std::string* used) {
  constexpr int kNewest = 37;  // the newest checklist known here
  int m = kNewest;
  if (minor.size() > 2 && minor.substr(0, 2) == "1.") {
    try {
      m = std::stoi(std::string(minor.substr(2)));
    } catch (...) {
      m = kNewest;
    }
  }
  m = std::clamp(m, 33, kNewest);
  if (used != nullptr) *used = "1." + std::to_string(m);
  std::vector<ChecklistItem> out;
  // 1.36 and 1.37 (kubernetes-sigs/wg-ai-conformance conformance-versions) list the same entries
  // with the same levels for what this probe tests; dra_support left the checklist in 1.36.
  if (m <= 35) {
    out.push_back({"dra_support", "accelerators", m == 33 ? "SHOULD" : "MUST", kDraDescription});
  }
  if (m >= 35) {
    out.push_back(
        {"driver_runtime_management", "accelerators", "SHOULD", kDriverRuntimeDescription});
    out.push_back({"gpu_sharing", "accelerators", "SHOULD", kGpuSharingDescription});
  }
  out.push_back({"secure_accelerator_access", "security", "MUST", kSecureAccessDescription});
  return out;
}

std::string RerunCommand(const Report& r, std::string_view id) {
  return (r.command.empty() ? std::string("accel-dra-probe run") : r.command) + " --only " +
         std::string(id);
}

std::string RenderSummary(const Report& r) {
  std::ostringstream o;
  o << "accel-dra-probe " << r.probe_version << ": driver " << r.driver << ", Kubernetes "
    << (r.server_version.empty() ? "(unknown)" : r.server_version) << "\n";
  for (const auto& line : EnvironmentLines(r)) o << "  " << line << "\n";
  for (const auto& c : r.checks) {
    std::string st(CheckStatusName(c.status));
    std::transform(st.begin(), st.end(), st.begin(), ::toupper);
    o << "  " << st << "  " << c.id << " (" << Seconds(c.seconds) << " s)";
    if (!c.message.empty()) o << ": " << c.message;
    o << "\n";
  }
  size_t counts[4] = {0, 0, 0, 0};
  for (const auto& c : r.checks) ++counts[static_cast<int>(c.status)];
  o << "result: " << OverallResult(r) << " (" << counts[static_cast<int>(CheckStatus::kPass)]
    << " passed, " << counts[static_cast<int>(CheckStatus::kPartial)] << " partial, "
    << counts[static_cast<int>(CheckStatus::kFail)] << " failed, "
    << counts[static_cast<int>(CheckStatus::kSkip)] << " skipped"
    << (r.interrupted ? ", interrupted" : "") << ") in " << Seconds(r.seconds) << " s\n";
  return o.str();
}

Json EnvironmentJson(const Report& r) {
  Json nodes = Json::array();
  for (const auto& n : r.environment.nodes) {
    Json devices = Json::array();
    for (const auto& g : n.devices) {
      devices.push_back({{"productName", g.product},
                         {"vendor", g.vendor},
                         {"driverVersion", g.driver_version},
                         {"runtimeVersion", g.runtime_version},
                         {"simulated", g.simulated},
                         {"devices", g.devices}});
    }
    nodes.push_back({{"name", n.name},
                     {"kubeletVersion", n.kubelet_version},
                     {"osImage", n.os_image},
                     {"kernelVersion", n.kernel_version},
                     {"architecture", n.architecture},
                     {"containerRuntimeVersion", n.container_runtime},
                     {"deviceGroups", devices}});
  }
  return {{"kubernetesVersion", r.server_version},
          {"simulated", r.environment.Simulated()},
          {"nodes", nodes},
          {"summary", EnvironmentLines(r)}};
}

std::string RenderJson(const Report& r) {
  Json checks = Json::array();
  for (const auto& c : r.checks) {
    Json manifests = Json::array();
    for (const auto& m : c.manifests) manifests.push_back({{"title", m.title}, {"yaml", m.yaml}});
    Json raw = Json::array();
    for (const auto& x : c.raw) {
      raw.push_back({{"command", x.command}, {"excerpt", x.excerpt}, {"output", x.output}});
    }
    checks.push_back({{"id", c.id},
                      {"status", std::string(CheckStatusName(c.status))},
                      {"message", c.message},
                      {"seconds", c.seconds},
                      {"rerun", RerunCommand(r, c.id)},
                      {"ran", c.ran},
                      {"manifests", manifests},
                      {"observed", c.observed},
                      {"raw", raw}});
  }
  Json j = {{"probeVersion", r.probe_version},
            {"driver", r.driver},
            {"kubernetesVersion", r.server_version},
            {"command", r.command},
            {"environment", EnvironmentJson(r)},
            {"namespace", r.namespace_},
            {"startedAt", r.started_at},
            {"seconds", r.seconds},
            {"interrupted", r.interrupted},
            {"passed", AllPassed(r)},
            {"result", AllPassed(r)    ? "pass"
                       : NoneFailed(r) ? "partial"
                                       : "fail"},
            {"cleanup", r.cleanup},
            {"checks", checks}};
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

// Container output, cluster messages and names in evidence.md are escaped (MdText, MdCode): no
// value can break the layout or inject Markdown or HTML.
std::string RenderEvidence(const Report& r) {
  std::string used;
  auto items = ChecklistFor(MinorVersion(r.server_version), &used);
  std::ostringstream o;
  o << "# accel-dra-probe evidence\n\n";
  RenderEnvironment(r, o);
  o << "## Run\n\n| | |\n|---|---|\n";
  o << "| Probe | accel-dra-probe " << MdText(r.probe_version) << " |\n";
  o << "| Command | " << MdCode(r.command.empty() ? "accel-dra-probe run" : r.command, true)
    << " |\n";
  o << "| DRA driver | " << MdCode(r.driver, /*in_table=*/true) << " |\n";
  o << "| Kubernetes | " << MdText(r.server_version) << " (AI-conformance checklist v" << used
    << ") |\n";
  o << "| Started | " << MdText(r.started_at) << " |\n";
  o << "| Duration | " << Seconds(r.seconds) << " s |\n";
  o << "| Namespace | " << MdCode(r.namespace_, /*in_table=*/true) << " (deleted afterwards) |\n";
  o << "| Result | **" << OverallResult(r) << "**" << (r.interrupted ? " (interrupted)" : "")
    << " |\n\n";
  o << "| Requirement | Level | Result | Message |\n|---|---|---|---|\n";
  for (const auto& c : r.checks) {
    const ChecklistItem* item = FindItem(items, c.id);
    o << "| [" << c.id << "](#" << c.id << ") | "
      << (item ? item->level : std::string("not in v" + used)) << " | " << CheckStatusName(c.status)
      << " | " << MdText(c.message) << " |\n";
  }
  o << "\nNo test pod used privileged mode or hostPath volumes; every pod used "
       "`terminationGracePeriodSeconds: 1`. A partial result means the mechanism works but only "
       "in part (e.g. a time slice the devices accept but do not enforce); it is never counted "
       "as a pass.\n";
  for (const auto& c : r.checks) RenderEvidenceSection(r, c, FindItem(items, c.id), used, o);
  if (!r.cleanup.empty()) {
    o << "\n## Clean-up\n\n";
    for (const auto& s : r.cleanup) o << "- " << MdText(s, /*line_start=*/true) << "\n";
  }
  return o.str();
}

// Text for a one-line YAML comment: UTF-8 without line breaks or other control characters (the
// apiserver's version string is not ours).
std::string CommentText(std::string_view s) {
  std::string out = ValidUtf8(s);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

std::string RenderProductYaml(const Report& r) {
  std::string minor = MinorVersion(r.server_version);
  std::string used;
  auto items = ChecklistFor(minor, &used);
  std::ostringstream o;
  o << "# Kubernetes AI Conformance checklist v" << used
    << " — fragment generated by accel-dra-probe " << r.probe_version << "\n";
  o << "# against Kubernetes "
    << (r.server_version.empty() ? "(unknown)" : CommentText(r.server_version))
    << " with DRA driver " << r.driver << " at " << r.started_at << ".\n";
  if (minor != used) {
    o << "# The cluster's version " << (minor.empty() ? "(unknown)" : minor)
      << " has no checklist here; the nearest one (v" << used << ") is used.\n";
  }
  o << "# Test environment:\n";
  for (const auto& line : EnvironmentLines(r)) o << "#   " << CommentText(line) << "\n";
  o << "# Copy these entries into your PRODUCT.yaml; do not change id, description or level.\n";
  for (const auto& c : r.checks) {
    if (FindItem(items, c.id) == nullptr) {
      o << "# " << c.id << " (" << CheckStatusName(c.status) << ") is not in the v" << used
        << " checklist; see " << kEvidenceMd << "#" << c.id << ".\n";
    }
  }
  o << "metadata:\n  kubernetesVersion: v" << used << "\nspec:\n";
  std::string category;
  for (const auto& item : items) {
    const CheckResult* res = nullptr;
    for (const auto& c : r.checks) {
      if (c.id == item.id) res = &c;
    }
    if (item.category != category) {
      category = item.category;
      o << "  " << category << ":\n";
    }
    o << "    - id: " << item.id << "\n";
    o << "      description: " << Quote(item.description) << "\n";
    o << "      level: " << item.level << "\n";
    std::string notes;
    if (res == nullptr) {
      o << "      status: \"\"\n      evidence: []\n";
      notes = "not run by accel-dra-probe (not selected with --only)";
    } else {
      o << "      status: " << Quote(ProductStatus(res->status)) << "\n";
      o << "      evidence:\n";
      o << "        - " << Quote(std::string(kEvidenceMd) + "#" + item.id) << "\n";
      o << "        - " << Quote(std::string(kJunitXml) + "#" + UpstreamTestName(item.id)) << "\n";
      o << "        - " << Quote(kResultsJson) << "\n";
      o << "        - " << Quote(kE2eLog) << "\n";
      o << "        - " << Quote(kReportJson) << "\n";
      notes = "accel-dra-probe " + std::string(CheckStatusName(res->status)) +
              (r.environment.Simulated() ? " on simulated devices" : "") +
              (res->message.empty() ? "" : ": " + res->message);
    }
    o << "      notes: " << Quote(notes) << "\n";
  }
  return o.str();
}

Status WriteReports(const Report& report, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return InvalidArgument("cannot create output directory " + dir + ": " + ec.message());
  const std::pair<std::string_view, std::string> files[] = {
      {kReportJson, RenderJson(report)},          {kJunitXml, RenderJunit(report)},
      {kEvidenceMd, RenderEvidence(report)},      {kProductYaml, RenderProductYaml(report)},
      {kResultsJson, RenderUpstreamJson(report)}, {kE2eLog, RenderUpstreamLog(report)}};
  for (const auto& [name, content] : files) {
    std::filesystem::path path = std::filesystem::path(dir) / name;
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f << content;
      f.flush();
      if (!f) return Internal("cannot write " + tmp.string());
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec)
      return Internal("cannot rename " + tmp.string() + " to " + path.string() + ": " +
                      ec.message());
  }
  return Status::Ok();
}

}  // namespace accel_dra::probe
