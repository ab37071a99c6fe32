// The results in the upstream suite's layout (kubernetes-sigs/ai-conformance `test/`): the
// results.json that `go test -json` writes (test2json events, one JSON object a line), the
// junit.xml with the fields gotestsum writes, and the e2e.log of `go test -v`. Our checks appear
// as Go-style tests of the package kUpstreamPackage, so the files can lie beside the upstream
// suite's own; each test's output opens with RESULT: KEY=VALUE lines (the upstream protocol).

#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "accel_dra/probe/evidence.h"
#include "accel_dra/probe/report.h"
#include "report_text.h"

namespace accel_dra::probe {
namespace {

using Json = nlohmann::json;

// One test2json event: action "start", "run", "output", "pass", "fail" or "skip"; `test` empty
// for the package's own events; `elapsed` < 0 when the event has none.
struct Event {
  std::string action;
  std::string test;
  std::string output;
  double elapsed = -1;
};

std::string GoSeconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2fs", s);
  return buf;
}

// What `go test` says of a finished test, and its event action.
std::pair<std::string, std::string> Verdict(CheckStatus s) {
  switch (s) {
    case CheckStatus::kPass:
      return {"PASS", "pass"};
    case CheckStatus::kFail:
      return {"FAIL", "fail"};
    case CheckStatus::kSkip:
    case CheckStatus::kPartial:  // neither a pass nor a failure: RESULT: STATUS=PARTIAL says why
      return {"SKIP", "skip"};
  }
  return {"SKIP", "skip"};
}

// The output lines of one check, indented as t.Log output is.
std::vector<std::string> CheckLines(const Report& r, const CheckResult& c) {
  std::string status(CheckStatusName(c.status));
  for (char& ch : status) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  std::vector<std::string> out = {"RESULT: CHECK=" + c.id, "RESULT: STATUS=" + status};
  if (r.environment.Simulated()) out.push_back("RESULT: SIMULATED_DEVICES=true");
  if (!c.message.empty()) out.push_back("RESULT: MESSAGE=" + c.message);
  out.push_back("re-run: " + RerunCommand(r, c.id));
  for (const auto& s : c.ran) out.push_back("ran: " + s);
  for (const auto& s : c.observed) out.push_back("observed: " + s);
  for (const auto& x : c.raw) {
    out.push_back("$ " + x.command + (x.excerpt.empty() ? "" : "   # excerpt: " + x.excerpt));
    std::istringstream lines(x.output);
    for (std::string line; std::getline(lines, line);) out.push_back("  " + line);
  }
  return out;
}

std::vector<Event> Events(const Report& r) {
  std::vector<Event> ev;
  ev.push_back({"start", "", "", -1});
  for (const auto& line : EnvironmentLines(r)) ev.push_back({"output", "", line + "\n", -1});
  for (const auto& c : r.checks) {
    const std::string name = UpstreamTestName(c.id);
    const auto [word, action] = Verdict(c.status);
    ev.push_back({"run", name, "", -1});
    ev.push_back({"output", name, "=== RUN   " + name + "\n", -1});
    for (const auto& line : CheckLines(r, c)) ev.push_back({"output", name, "    " + line + "\n"});
    ev.push_back(
        {"output", name, "--- " + word + ": " + name + " (" + GoSeconds(c.seconds) + ")\n", -1});
    ev.push_back({action, name, "", c.seconds});
  }
  const bool ok = NoneFailed(r);
  ev.push_back({"output", "", ok ? "PASS\n" : "FAIL\n", -1});
  ev.push_back({"output", "",
                std::string(ok ? "ok  \t" : "FAIL\t") + std::string(kUpstreamPackage) + "\t" +
                    GoSeconds(r.seconds) + "\n",
                -1});
  ev.push_back({ok ? "pass" : "fail", "", "", r.seconds});
  return ev;
}

}  // namespace

std::string UpstreamTestName(std::string_view id) {
  std::string out = "TestAccelDra";
  bool upper = true;
  for (char ch : id) {
    if (ch == '_') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(ch))) : ch;
    upper = false;
  }
  return out;
}

std::string RenderUpstreamJson(const Report& r) {
  std::string out;
  for (const auto& e : Events(r)) {
    Json j = {{"Time", r.started_at}, {"Action", e.action}, {"Package", kUpstreamPackage}};
    if (!e.test.empty()) j["Test"] = e.test;
    if (e.action == "output") j["Output"] = e.output;
    if (e.elapsed >= 0) j["Elapsed"] = e.elapsed;
    out += j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  }
  return out;
}

std::string RenderUpstreamLog(const Report& r) {
  std::string out;
  for (const auto& e : Events(r)) out += e.output;
  return out;
}

std::string RenderJunit(const Report& r) {
  size_t failures = 0, skipped = 0;
  for (const auto& c : r.checks) {
    if (c.status == CheckStatus::kFail) ++failures;
    if (c.status == CheckStatus::kSkip || c.status == CheckStatus::kPartial) ++skipped;
  }
  const std::string pkg(kUpstreamPackage);
  std::string env;
  for (const auto& line : EnvironmentLines(r)) env += line + "\n";
  std::ostringstream o;
  o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o << "<testsuites tests=\"" << r.checks.size() << "\" failures=\"" << failures
    << "\" errors=\"0\" time=\"" << Seconds(r.seconds) << "\">\n";
  o << "  <testsuite tests=\"" << r.checks.size() << "\" failures=\"" << failures
    << "\" errors=\"0\" skipped=\"" << skipped << "\" time=\"" << Seconds(r.seconds) << "\" name=\""
    << pkg << "\" timestamp=\"" << XmlEscape(r.started_at) << "\">\n";
  o << "    <properties>\n";
  const std::pair<std::string, std::string> props[] = {
      {"driver", r.driver},
      {"kubernetesVersion", r.server_version},
      {"simulated", r.environment.Simulated() ? "true" : "false"},
      {"environment", env},
      {"command", r.command}};
  for (const auto& [name, value] : props) {
    o << "      <property name=\"" << name << "\" value=\"" << XmlEscape(value)
      << "\"></property>\n";
  }
  o << "    </properties>\n";
  for (const auto& c : r.checks) {
    o << "    <testcase classname=\"" << pkg << "\" name=\"" << UpstreamTestName(c.id)
      << "\" time=\"" << Seconds(c.seconds) << "\">\n";
    if (c.status == CheckStatus::kFail) {
      o << "      <failure message=\"" << XmlEscape(c.message) << "\" type=\"\">"
        << XmlEscape(c.message) << "</failure>\n";
    } else if (c.status != CheckStatus::kPass) {
      o << "      <skipped message=\""
        << XmlEscape((c.status == CheckStatus::kPartial ? "partial: " : "") + c.message)
        << "\"></skipped>\n";
    }
    o << "      <system-out>";
    for (const auto& line : CheckLines(r, c)) o << XmlEscape(line) << "\n";
    o << "</system-out>\n";
    o << "    </testcase>\n";
  }
  o << "  </testsuite>\n</testsuites>\n";
  return o.str();
}

}  // namespace accel_dra::probe
