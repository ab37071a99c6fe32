// Report files: summary, JSON, JUnit, Markdown evidence and the PRODUCT.yaml fragment per
// Kubernetes version 1.33–1.36.

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
  for (const char* v : {"1.33", "1.34"}) {
    EXPECT_EQ(level(v, "driver_runtime_management"), "-") << v;
    EXPECT_EQ(level(v, "gpu_sharing"), "-") << v;
  }
  for (const char* v : {"1.35", "1.36"}) {
    EXPECT_EQ(level(v, "driver_runtime_management"), "SHOULD") << v;
    EXPECT_EQ(level(v, "gpu_sharing"), "SHOULD") << v;
  }
  for (const char* v : {"1.33", "1.34", "1.35", "1.36"}) {
    EXPECT_EQ(level(v, "secure_accelerator_access"), "MUST") << v;
  }
  std::string used;
  ChecklistFor("1.30", &used);
  EXPECT_EQ(used, "1.33");
  ChecklistFor("1.40", &used);
  EXPECT_EQ(used, "1.36");
}

TEST(ProbeReport, ProductYamlPerVersion) {
  for (const char* v : {"v1.33.2", "v1.34.1", "v1.35.4", "v1.36.0"}) {
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
    EXPECT_EQ(entries["secure_accelerator_access"]["evidence"][1].as<std::string>(), "junit.xml");
    if (minor == "1.36") {
      EXPECT_THAT(text, HasSubstr("# dra_support (pass) is not in the v1.36 checklist"));
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
  EXPECT_THAT(x, HasSubstr("tests=\"4\" failures=\"1\" errors=\"0\" skipped=\"1\""));
  EXPECT_THAT(x, HasSubstr("<testcase classname=\"accel-dra-probe\" name=\"dra_support\""));
  EXPECT_THAT(x, HasSubstr("<failure message=\"node node-0 publishes driverVersion 1.0.0 but the "
                           "container sees 9.9.9 &lt;&amp;&gt;\""));
  EXPECT_THAT(x, HasSubstr("<skipped message=\"not run: the probe was interrupted\"/>"));
  EXPECT_THAT(x, Not(HasSubstr("<&>")));
}

// Found by tests/fuzz/probe_report_fuzz: pod output that is not UTF-8, or holds a non-character,
// made junit.xml malformed.
TEST(ProbeReport, JunitIsWellFormedForAnyBytes) {
  Report r = Sample("v1.35.4");
  r.server_version = "v1.35\xff";
  r.checks[0].observed = {"a\xe7\xee b", "\xef\xbf\xbe\xed\xa0\x80 c \xc3\xa9", "d\re\x01"};
  std::string x = RenderJunit(r);
  EXPECT_THAT(x, HasSubstr("value=\"v1.35\xef\xbf\xbd\"/>"));
  EXPECT_THAT(x, HasSubstr("a\xef\xbf\xbd\xef\xbf\xbd b\n"));
  EXPECT_THAT(x, HasSubstr("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd c \xc3\xa9\n"));
  EXPECT_THAT(x, HasSubstr("d e \n"));
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
  }
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
  for (std::string line; std::getline(scan, line);) {
    // Code spans: the observations, and the driver and namespace rows of the table.
    if (line.rfind("- `", 0) == 0 || line.rfind("| Namespace | `", 0) == 0) continue;
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
  std::istringstream lines(md);
  int h2 = 0, rows = 0;
  for (std::string line; std::getline(lines, line);) {
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
  EXPECT_EQ(h2, 5);  // four checks and the clean-up
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
  EXPECT_THAT(s, HasSubstr("result: FAIL (2 passed, 1 failed, 1 skipped)"));
  EXPECT_FALSE(AllPassed(r));
  r.checks = {r.checks[0]};
  EXPECT_TRUE(AllPassed(r));
  EXPECT_FALSE(AllPassed(Report{}));
}

TEST(ProbeReport, WriteReportsWritesFourFiles) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "probe-report-out";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WriteReports(Sample("v1.35.4"), (dir / "sub").string()).ok());
  for (const char* f : {"report.json", "junit.xml", "evidence.md", "PRODUCT.yaml"}) {
    EXPECT_TRUE(std::filesystem::is_regular_file(dir / "sub" / f)) << f;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace accel_dra::probe
