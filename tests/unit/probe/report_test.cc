// Report files: summary, JSON, JUnit, Markdown evidence and the PRODUCT.yaml fragment per
// Kubernetes version 1.33–1.37, the test environment that opens each, partial results, and the
// upstream suite's layout (results.json, junit.xml, e2e.log).

#include "accel_dra/probe/report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "run_command.h"

namespace accel_dra::probe {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;

Report Sample(const std::string& version) {
  Report r;
  r.probe_version = "0.1.0";
  r.driver = "accel-dra.dev";
  r.server_version = version;
  r.namespace_ = "accel-dra-probe-abcde";
  r.started_at = "2026-11-22T10:00:00Z";
  r.seconds = 42.5;
  r.cleanup = {"deleted namespace accel-dra-probe-abcde"};
  CheckResult a;
  a.id = "dra_support";
  a.status = CheckStatus::kPass;
  a.message = "resource.k8s.io/v1 served";
  a.ran = {"a pod with a ResourceClaimTemplate"};
  a.manifests = {{"DeviceClass x", "kind: DeviceClass\n"}};
  a.observed = {"pool node-0: generation 1, 1/1 slices (complete)"};
  CheckResult b;
  b.id = "driver_runtime_management";
  b.status = CheckStatus::kFail;
  b.message = "node node-0 publishes driverVersion 1.0.0 but the container sees 9.9.9 <&>";
  CheckResult c;
  c.id = "gpu_sharing";
  c.status = CheckStatus::kSkip;
  c.message = "not run: the probe was interrupted";
  CheckResult d;
  d.id = "secure_accelerator_access";
  d.status = CheckStatus::kPass;
  d.observed = {"pod extra stays Pending: 0/1 nodes are available: 1 cannot allocate all claims"};
  r.checks = {a, b, c, d};
  return r;
}

std::map<std::string, YAML::Node> Entries(const YAML::Node& doc) {
  std::map<std::string, YAML::Node> out;
  for (const auto& cat : doc["spec"]) {
    for (const auto& item : cat.second) {
      const YAML::Node& node = item;
      out.emplace(node["id"].as<std::string>(), node);
    }
  }
  return out;
}

TEST(ProbeReport, MinorVersion) {
  EXPECT_EQ(MinorVersion("v1.35.4"), "1.35");
  EXPECT_EQ(MinorVersion("1.36"), "1.36");
  EXPECT_EQ(MinorVersion("v1.34.0-rc.1+abc"), "1.34");
  EXPECT_EQ(MinorVersion("garbage"), "");
}

TEST(ProbeReport, ChecklistLevelsPerVersion) {
  auto level = [](const std::string& v, const std::string& id) -> std::string {
    for (const auto& i : ChecklistFor(v)) {
      if (i.id == id) return i.level;
    }
    return "-";
  };
  EXPECT_EQ(level("1.33", "dra_support"), "SHOULD");
  EXPECT_EQ(level("1.34", "dra_support"), "MUST");
  EXPECT_EQ(level("1.35", "dra_support"), "MUST");
  EXPECT_EQ(level("1.36", "dra_support"), "-");
  EXPECT_EQ(level("1.37", "dra_support"), "-");
  for (const char* v : {"1.33", "1.34"}) {
    EXPECT_EQ(level(v, "driver_runtime_management"), "-") << v;
    EXPECT_EQ(level(v, "gpu_sharing"), "-") << v;
  }
  for (const char* v : {"1.35", "1.36", "1.37"}) {
    EXPECT_EQ(level(v, "driver_runtime_management"), "SHOULD") << v;
    EXPECT_EQ(level(v, "gpu_sharing"), "SHOULD") << v;
  }
  for (const char* v : {"1.33", "1.34", "1.35", "1.36", "1.37"}) {
    EXPECT_EQ(level(v, "secure_accelerator_access"), "MUST") << v;
  }
  for (const auto& i : ChecklistFor("1.37")) {
    EXPECT_EQ(i.category, i.id == "secure_accelerator_access" ? "security" : "accelerators");
  }
  std::string used;
  ChecklistFor("1.30", &used);
  EXPECT_EQ(used, "1.33");
  ChecklistFor("1.40", &used);
  EXPECT_EQ(used, "1.37");  // the nearest for a newer cluster
  ChecklistFor("1.37", &used);
  EXPECT_EQ(used, "1.37");
}

TEST(ProbeReport, ProductYamlPerVersion) {
  for (const char* v : {"v1.33.2", "v1.34.1", "v1.35.4", "v1.36.0", "v1.37.2"}) {
    SCOPED_TRACE(v);
    std::string text = RenderProductYaml(Sample(v));
    YAML::Node doc = YAML::Load(text);
    std::string minor = MinorVersion(v);
    EXPECT_EQ(doc["metadata"]["kubernetesVersion"].as<std::string>(), "v" + minor);
    auto entries = Entries(doc);
    auto items = ChecklistFor(minor);
    ASSERT_EQ(entries.size(), items.size());
    for (const auto& item : items) {
      ASSERT_TRUE(entries.count(item.id)) << item.id;
      const YAML::Node& e = entries[item.id];
      EXPECT_EQ(e["level"].as<std::string>(), item.level);
      EXPECT_EQ(e["description"].as<std::string>(), item.description);
      EXPECT_TRUE(doc["spec"][item.category].IsSequence()) << item.category;
    }
    EXPECT_EQ(entries["secure_accelerator_access"]["status"].as<std::string>(), "Implemented");
    EXPECT_EQ(entries["secure_accelerator_access"]["evidence"][0].as<std::string>(),
              "evidence.md#secure_accelerator_access");
    EXPECT_EQ(entries["secure_accelerator_access"]["evidence"][1].as<std::string>(),
              "junit.xml#TestAccelDraSecureAcceleratorAccess");
    EXPECT_EQ(entries["secure_accelerator_access"]["evidence"][2].as<std::string>(),
              "results.json");
    if (minor >= "1.36") {
      EXPECT_THAT(text, HasSubstr("# dra_support (pass) is not in the v" + minor + " checklist"));
    } else {
      EXPECT_EQ(entries["dra_support"]["status"].as<std::string>(), "Implemented");
    }
    if (minor >= "1.35") {
      EXPECT_EQ(entries["driver_runtime_management"]["status"].as<std::string>(),
                "Not Implemented");
      EXPECT_THAT(entries["driver_runtime_management"]["notes"].as<std::string>(),
                  HasSubstr("container sees 9.9.9"));
      EXPECT_EQ(entries["gpu_sharing"]["status"].as<std::string>(), "");
    }
  }
}

TEST(ProbeReport, JunitCountsAndEscapes) {
  std::string x = RenderJunit(Sample("v1.35.4"));
  // gotestsum's fields: the package is the testsuite and every testcase's classname.
  EXPECT_THAT(x, HasSubstr("<testsuites tests=\"4\" failures=\"1\" errors=\"0\" time=\"42.500\">"));
  EXPECT_THAT(x, HasSubstr("tests=\"4\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"42.500\" "
                           "name=\"accel-dra.dev/probe\""));
  EXPECT_THAT(x, HasSubstr("<testcase classname=\"accel-dra.dev/probe\" "
                           "name=\"TestAccelDraDraSupport\""));
  EXPECT_THAT(x, HasSubstr("<failure message=\"node node-0 publishes driverVersion 1.0.0 but the "
                           "container sees 9.9.9 &lt;&amp;&gt;\""));
  EXPECT_THAT(x, HasSubstr("<skipped message=\"not run: the probe was interrupted\"></skipped>"));
  EXPECT_THAT(x, Not(HasSubstr("<&>")));
}

// Found by tests/fuzz/probe_report_fuzz: pod output that is not UTF-8, or holds a non-character,
// made junit.xml malformed.
TEST(ProbeReport, JunitIsWellFormedForAnyBytes) {
  Report r = Sample("v1.35.4");
  r.server_version = "v1.35\xff";
  r.checks[0].observed = {"a\xe7\xee b", "\xef\xbf\xbe\xed\xa0\x80 c \xc3\xa9", "d\re\x01"};
  std::string x = RenderJunit(r);
  EXPECT_THAT(x, HasSubstr("value=\"v1.35\xef\xbf\xbd\"></property>"));
  EXPECT_THAT(x, HasSubstr("a\xef\xbf\xbd\xef\xbf\xbd b\n"));
  EXPECT_THAT(x, HasSubstr("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd c \xc3\xa9\n"));
  EXPECT_THAT(x, HasSubstr("d&#13;e\xef\xbf\xbd\n"));  // CR as a reference, \x01 replaced
}

// Found by tests/fuzz/probe_report_fuzz: a version string with a line break (the apiserver's, not
// ours) ended the YAML comment it is quoted in.
TEST(ProbeReport, ProductYamlParsesWhateverTheServerVersionSays) {
  Report r = Sample("v1.35.4\nspec: \"\\q\xff");
  std::string text = RenderProductYaml(r);
  YAML::Node doc;
  ASSERT_NO_THROW(doc = YAML::Load(text)) << text;
  EXPECT_EQ(doc["metadata"]["kubernetesVersion"].as<std::string>(), "v1.35");
  EXPECT_THAT(text, HasSubstr("# against Kubernetes v1.35.4 spec: \"\\q\xef\xbf\xbd with"));
}

TEST(ProbeReport, EvidenceHasOneSectionPerRequirement) {
  std::string md = RenderEvidence(Sample("v1.35.4"));
  for (const char* id :
       {"dra_support", "driver_runtime_management", "gpu_sharing", "secure_accelerator_access"}) {
    EXPECT_THAT(md, HasSubstr(std::string("\n## ") + id + "\n")) << id;
  }
  EXPECT_THAT(md, HasSubstr("**Level (v1.35):** MUST"));
  EXPECT_THAT(md, HasSubstr("### What was run"));
  EXPECT_THAT(md, HasSubstr("- a pod with a ResourceClaimTemplate"));
  EXPECT_THAT(md, HasSubstr("```yaml\nkind: DeviceClass\n```"));
  EXPECT_THAT(md, HasSubstr("### What was seen"));
  EXPECT_THAT(md, HasSubstr("- `pod extra stays Pending: 0/1 nodes are available"));
  EXPECT_THAT(md, HasSubstr("| Result | **FAIL** |"));
  EXPECT_THAT(RenderEvidence(Sample("v1.36.0")), HasSubstr("Not listed in the v1.36 checklist"));
  EXPECT_THAT(RenderEvidence(Sample("v1.37.2")), HasSubstr("Not listed in the v1.37 checklist"));
}

// Hostile bytes from containers and the cluster (issue 11): invalid UTF-8, control characters,
// "]]>", markup, quotes, newlines, backticks, Markdown that would open blocks.
constexpr char kHostileBytes[] =
    "a\0"
    "b\x01\x07\x1b"
    "[31m\xff\xfe\xc3(\xed\xa0\x80\xf4\x90\x80\x80\xef\xbf\xbe"
    "]]><script>alert(1)</script>&amp;\"'\n# heading\r\n| x | y |\n```\n</details>`` `code` \\";
const std::string kHostile(kHostileBytes, sizeof(kHostileBytes) - 1);

Report HostileReport() {
  Report r = Sample("v1.35.4");
  r.driver = "evil|`driver`";
  r.namespace_ = kHostile;
  r.server_version = kHostile;
  r.started_at = kHostile;
  r.cleanup = {kHostile, "- 1. nested"};
  for (auto& c : r.checks) {
    c.message = kHostile;
    c.ran.push_back(kHostile);
    c.ran.push_back("# not a heading");
    c.ran.push_back("12) not a list");
    c.observed.push_back(kHostile);
    c.observed.push_back("`starts and ends with a backtick`");
    c.manifests.push_back({kHostile, "a: 1\n```\nb: 2\n"});
    c.raw.push_back({"kubectl logs " + kHostile, kHostile, kHostile});
  }
  r.command = kHostile;
  r.checks[1].status = CheckStatus::kFail;
  return r;
}

TEST(ProbeReport, JunitIsWellFormedXmlForAnyBytes) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "probe-report-hostile";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WriteReports(HostileReport(), dir.string()).ok());
  // Python's XML parser, strict about well-formedness (encoding, characters, markup).
  const std::string script =
      "import sys, xml.etree.ElementTree as ET\n"
      "root = ET.parse(sys.argv[1]).getroot()\n"
      "cases = root.findall('./testsuite/testcase')\n"
      "assert len(cases) == 4, len(cases)\n"
      "f = cases[1].find('failure')\n"
      "m = f.get('message')\n"
      "assert ']]><script>alert(1)</script>&amp;' in m, m\n"
      "assert '\\n# heading\\r\\n' in m, repr(m)\n"
      "assert m.startswith('a\\ufffdb\\ufffd'), repr(m)\n"
      "print('ok', len(cases))\n";
  std::ofstream(dir / "check.py") << script;
  int rc = 0;
  std::string out = testing::RunCommand(
      "python3 '" + (dir / "check.py").string() + "' '" + (dir / "junit.xml").string() + "' 2>&1",
      &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("ok 4"));
  std::filesystem::remove_all(dir);
}

TEST(ProbeReport, EvidenceEscapesWhatContainersSaid) {
  const std::string md = RenderEvidence(HostileReport());
  // Nothing raw that a renderer would take as HTML (container output stays literal only inside
  // code spans, where HTML is not interpreted).
  std::istringstream scan(md);
  std::string fence;  // inside a fenced block (raw outputs, manifests): literal, not HTML
  std::vector<std::string> outside;  // the lines outside fenced blocks
  for (std::string line; std::getline(scan, line);) {
    if (fence.empty() && line.rfind("```", 0) == 0) {
      fence = line.substr(0, line.find_first_not_of('`'));
      continue;
    }
    if (!fence.empty()) {
      if (line == fence) fence.clear();
      continue;
    }
    outside.push_back(line);
    // Code spans: the observations, the commands, and the driver and namespace rows of the table.
    if (line.rfind("- `", 0) == 0 || line.rfind("| Namespace | `", 0) == 0 ||
        line.rfind("Command: `", 0) == 0 || line.rfind("| Command | `", 0) == 0 ||
        line.rfind("Re-run this check: `", 0) == 0 || line.rfind("What these commands", 0) == 0) {
      continue;
    }
    EXPECT_EQ(line.find("<script>"), std::string::npos) << line;
    EXPECT_EQ(line.find("</details>`"), std::string::npos) << line;
  }
  EXPECT_THAT(md, HasSubstr("&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp;"));
  // Invalid bytes and control characters are replaced; lines are not split.
  EXPECT_EQ(md.find('\r'), std::string::npos);
  EXPECT_EQ(md.find(std::string(1, '\0')), std::string::npos);
  EXPECT_EQ(md.find('\x1b'), std::string::npos);
  EXPECT_EQ(md.find("\xff"), std::string::npos);
  // The layout holds: one heading per check and no other second-level headings but Clean-up,
  // every table row has its four cells.
  EXPECT_TRUE(fence.empty()) << "a fenced block is not closed";
  int h2 = 0, rows = 0;
  for (const std::string& line : outside) {
    if (line.rfind("## ", 0) == 0) ++h2;
    if (line.rfind("# ", 0) == 0) {
      EXPECT_EQ(line, "# accel-dra-probe evidence");
    }
    if (line.rfind("| [", 0) == 0) {
      ++rows;
      size_t pipes = 0;
      for (size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '|' && (i == 0 || line[i - 1] != '\\')) ++pipes;
      }
      EXPECT_EQ(pipes, 5u) << line;
    }
  }
  EXPECT_EQ(h2, 7);  // the environment, the run, four checks and the clean-up
  EXPECT_EQ(rows, 4);
  // Markdown that would open a block at the start of a list item is escaped.
  EXPECT_THAT(md, HasSubstr("- \\# not a heading\n"));
  EXPECT_THAT(md, HasSubstr("- 12\\) not a list\n"));
  EXPECT_THAT(md, HasSubstr("- \\- 1. nested\n"));
  // Container output stays literal in a code span fenced longer than its backtick runs.
  EXPECT_THAT(md, HasSubstr("- ````a"));
  EXPECT_THAT(md, HasSubstr("- `` `starts and ends with a backtick` ``\n"));
  // A manifest holding a fence gets a longer one.
  EXPECT_THAT(md, HasSubstr("````yaml\na: 1\n```\nb: 2\n````\n"));
  // The driver's name in the table cannot split it.
  EXPECT_THAT(md, HasSubstr("| DRA driver | `` evil\\|`driver` `` |"));
}

TEST(ProbeReport, JsonAndSummary) {
  Report r = Sample("v1.35.4");
  auto j = nlohmann::json::parse(RenderJson(r));
  EXPECT_EQ(j["passed"], false);
  EXPECT_EQ(j["kubernetesVersion"], "v1.35.4");
  ASSERT_EQ(j["checks"].size(), 4u);
  EXPECT_EQ(j["checks"][1]["status"], "fail");
  EXPECT_EQ(j["checks"][0]["manifests"][0]["title"], "DeviceClass x");
  std::string s = RenderSummary(r);
  EXPECT_THAT(s, HasSubstr("FAIL  driver_runtime_management"));
  EXPECT_THAT(s, HasSubstr("result: FAIL (2 passed, 0 partial, 1 failed, 1 skipped)"));
  EXPECT_FALSE(AllPassed(r));
  r.checks = {r.checks[0]};
  EXPECT_TRUE(AllPassed(r));
  EXPECT_FALSE(AllPassed(Report{}));
}

TEST(ProbeReport, WriteReportsWritesSixFiles) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "probe-report-out";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WriteReports(Sample("v1.35.4"), (dir / "sub").string()).ok());
  for (const char* f :
       {"report.json", "junit.xml", "evidence.md", "PRODUCT.yaml", "results.json", "e2e.log"}) {
    EXPECT_TRUE(std::filesystem::is_regular_file(dir / "sub" / f)) << f;
  }
  std::filesystem::remove_all(dir);
}

// A report of the simulated local node with gpu_sharing partial (TIMESLICE_ENFORCED=false).
Report SimulatedReport(bool simulated = true) {
  Report r = Sample("v1.37.2");
  r.command = "accel-dra-probe run --kubeconfig /k --output out";
  NodeEnvironment n;
  n.name = "node-0";
  n.kubelet_version = "v1.37.2";
  n.os_image = "Debian GNU/Linux 12 (bookworm)";
  n.kernel_version = "6.1.0-40-amd64";
  n.architecture = "amd64";
  n.container_runtime = "containerd://2.2.9";
  DeviceGroup g;
  g.product = "Simulated Accelerator 80GB";
  g.vendor = simulated ? "simulated" : "nvidia";
  g.driver_version = "1.2.0";
  g.runtime_version = "12.4.0";
  g.simulated = simulated;
  g.devices = {"gpu-0", "gpu-1"};
  n.devices = {g};
  r.environment.nodes = {n};
  r.checks[1].status = CheckStatus::kPass;
  r.checks[1].message = "";
  r.checks[2].status = CheckStatus::kPartial;
  r.checks[2].message =
      "2 pods share device node-0/gpu-0 with TimeSlicing, but the time slice is only advisory";
  r.checks[2].raw = {
      {"kubectl logs -n accel-dra-probe-abcde shared-0 -c main",
       "RESULT: ENV_ACCEL_DEVICE_GPU_0_TIMESLICE_ENFORCED=false\nRESULT: DONE=true\n", ""},
      {"kubectl get resourceclaim time-sliced -n accel-dra-probe-abcde -o json", "{\"status\": {}}",
       "metadata.name, status"}};
  return r;
}

TEST(ProbeReport, EveryFileOpensWithTheEnvironment) {
  Report r = SimulatedReport();
  const std::string md = RenderEvidence(r);
  EXPECT_EQ(
      md.rfind("# accel-dra-probe evidence\n\n## Test environment\n\n**Devices: simulated.**", 0),
      0u)
      << md.substr(0, 300);
  EXPECT_LT(md.find("## Test environment"), md.find("## Run"));
  EXPECT_THAT(md, HasSubstr("| Kubernetes server | v1.37.2 |"));
  EXPECT_THAT(md, HasSubstr("| Node `node-0` | kubelet v1.37.2, Debian GNU/Linux 12 (bookworm), "
                            "kernel 6.1.0-40-amd64, amd64, container runtime "
                            "containerd://2.2.9 |"));
  EXPECT_THAT(md, HasSubstr("| `node-0` | 2 (gpu-0, gpu-1) | Simulated Accelerator 80GB | "
                            "simulated | 1.2.0 | 12.4.0 | **simulated** |"));
  EXPECT_THAT(md, HasSubstr("(on simulated devices)"));

  auto j = nlohmann::json::parse(RenderJson(r));
  EXPECT_EQ(j["environment"]["simulated"], true);
  EXPECT_EQ(j["environment"]["nodes"][0]["containerRuntimeVersion"], "containerd://2.2.9");
  EXPECT_EQ(j["environment"]["nodes"][0]["deviceGroups"][0]["runtimeVersion"], "12.4.0");
  EXPECT_EQ(j["command"], r.command);

  const std::string junit = RenderJunit(r);
  EXPECT_THAT(junit, HasSubstr("<property name=\"simulated\" value=\"true\"></property>"));
  EXPECT_THAT(junit, HasSubstr("Node node-0: kubelet v1.37.2"));

  const std::string product = RenderProductYaml(r);
  EXPECT_THAT(product, HasSubstr("# Test environment:\n#   Kubernetes server: v1.37.2\n"));
  EXPECT_THAT(product, HasSubstr("#   Devices: simulated"));
  auto entries = Entries(YAML::Load(product));
  EXPECT_THAT(entries["secure_accelerator_access"]["notes"].as<std::string>(),
              HasSubstr("accel-dra-probe pass on simulated devices"));

  EXPECT_EQ(RenderUpstreamLog(r).rfind("Kubernetes server: v1.37.2\nNode node-0:", 0), 0u);
  EXPECT_THAT(RenderSummary(r), HasSubstr("  Devices: simulated"));

  // Real devices: no simulated marker anywhere.
  const std::string real = RenderEvidence(SimulatedReport(false));
  EXPECT_EQ(real.find("simulated"), std::string::npos) << real;
  EXPECT_EQ(RenderProductYaml(SimulatedReport(false)).find("simulated"), std::string::npos);
}

TEST(ProbeReport, AdvisorySharingIsPartialNeverPass) {
  Report r = SimulatedReport();
  r.checks.erase(r.checks.begin() + 3);  // leave pass, pass, partial... without the skip
  r.checks.erase(r.checks.begin());
  r.checks[0].status = CheckStatus::kPass;
  EXPECT_FALSE(AllPassed(r));
  EXPECT_TRUE(NoneFailed(r));
  EXPECT_EQ(OverallResult(r), "PARTIAL");
  std::string s = RenderSummary(r);
  EXPECT_THAT(s, HasSubstr("PARTIAL  gpu_sharing"));
  EXPECT_THAT(s, HasSubstr("result: PARTIAL (1 passed, 1 partial, 0 failed, 0 skipped)"));
  EXPECT_THAT(RenderEvidence(r), HasSubstr("| [gpu_sharing](#gpu_sharing) | SHOULD | partial |"));
  EXPECT_THAT(RenderEvidence(r), HasSubstr("**Result:** partial in"));
  auto entries = Entries(YAML::Load(RenderProductYaml(r)));
  EXPECT_EQ(entries["gpu_sharing"]["status"].as<std::string>(), "Partially Implemented");
  EXPECT_EQ(nlohmann::json::parse(RenderJson(r))["result"], "partial");
  EXPECT_EQ(nlohmann::json::parse(RenderJson(r))["passed"], false);
  const std::string junit = RenderJunit(r);
  EXPECT_THAT(junit, HasSubstr("<skipped message=\"partial: 2 pods share device"));
  EXPECT_THAT(junit, HasSubstr("RESULT: STATUS=PARTIAL"));
  EXPECT_THAT(junit, Not(HasSubstr("<failure")));
}

TEST(ProbeReport, RawOutputsBesideTheVerdict) {
  Report r = SimulatedReport();
  const std::string md = RenderEvidence(r);
  const size_t section = md.find("\n## gpu_sharing\n");
  ASSERT_NE(section, std::string::npos);
  const std::string gpu = md.substr(section, md.find("\n## secure_accelerator_access") - section);
  EXPECT_THAT(gpu, HasSubstr("### Raw outputs\n\nRe-run this check: `accel-dra-probe run "
                             "--kubeconfig /k --output out --only gpu_sharing`"));
  EXPECT_THAT(gpu,
              HasSubstr("Command: `kubectl logs -n accel-dra-probe-abcde shared-0 -c main`\n\n```\n"
                        "RESULT: ENV_ACCEL_DEVICE_GPU_0_TIMESLICE_ENFORCED=false\n"
                        "RESULT: DONE=true\n```\n"));
  EXPECT_THAT(
      gpu, HasSubstr("Command: `kubectl get resourceclaim time-sliced -n accel-dra-probe-abcde -o "
                     "json` (excerpt: metadata.name, status)"));
  auto j = nlohmann::json::parse(RenderJson(r));
  EXPECT_EQ(j["checks"][2]["raw"][0]["command"],
            "kubectl logs -n accel-dra-probe-abcde shared-0 -c main");
  EXPECT_EQ(j["checks"][2]["rerun"], r.command + " --only gpu_sharing");
  EXPECT_THAT(RenderUpstreamLog(r),
              HasSubstr("    $ kubectl logs -n accel-dra-probe-abcde shared-0 -c main\n"
                        "      RESULT: ENV_ACCEL_DEVICE_GPU_0_TIMESLICE_ENFORCED=false\n"));
}

TEST(ProbeReport, UpstreamLayout) {
  Report r = SimulatedReport();
  EXPECT_EQ(UpstreamTestName("secure_accelerator_access"), "TestAccelDraSecureAcceleratorAccess");
  EXPECT_EQ(UpstreamTestName("dra_support"), "TestAccelDraDraSupport");
  // results.json: one test2json event a line, as `go test -json` writes it.
  std::istringstream lines(RenderUpstreamJson(r));
  std::vector<nlohmann::json> ev;
  for (std::string line; std::getline(lines, line);) ev.push_back(nlohmann::json::parse(line));
  ASSERT_GT(ev.size(), 10u);
  EXPECT_EQ(ev.front()["Action"], "start");
  for (const auto& e : ev) {
    EXPECT_EQ(e["Package"], "accel-dra.dev/probe");
    EXPECT_EQ(e["Time"], "2026-11-22T10:00:00Z");
  }
  std::map<std::string, std::string> verdict;
  for (const auto& e : ev) {
    const std::string a = e["Action"];
    if (e.contains("Test") && (a == "pass" || a == "fail" || a == "skip")) {
      verdict[e["Test"]] = a;
      EXPECT_TRUE(e.contains("Elapsed"));
    }
  }
  EXPECT_EQ(verdict["TestAccelDraDraSupport"], "pass");
  EXPECT_EQ(verdict["TestAccelDraGpuSharing"], "skip");  // partial: not a pass
  EXPECT_EQ(verdict["TestAccelDraSecureAcceleratorAccess"], "pass");
  EXPECT_EQ(ev.back()["Action"], "pass");  // no check failed
  EXPECT_FALSE(ev.back().contains("Test"));

  const std::string log = RenderUpstreamLog(r);
  EXPECT_THAT(log, HasSubstr("=== RUN   TestAccelDraDraSupport\n    RESULT: CHECK=dra_support\n"
                             "    RESULT: STATUS=PASS\n    RESULT: SIMULATED_DEVICES=true\n"));
  EXPECT_THAT(log, HasSubstr("--- PASS: TestAccelDraDraSupport (0.00s)\n"));
  EXPECT_THAT(log, HasSubstr("--- SKIP: TestAccelDraGpuSharing (0.00s)\n"));
  EXPECT_THAT(log, HasSubstr("\nPASS\nok  \taccel-dra.dev/probe\t42.50s\n"));
  r.checks[1].status = CheckStatus::kFail;
  EXPECT_THAT(RenderUpstreamLog(r), HasSubstr("\nFAIL\nFAIL\taccel-dra.dev/probe\t42.50s\n"));
}

}  // namespace
}  // namespace accel_dra::probe
