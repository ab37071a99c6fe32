// Fuzz target: the probe's report writers (src/probe/report.cc) on hostile text: pod output,
// driver-reported strings and apiserver messages end up in check messages, evidence lines and
// manifests.
//
// Input: a Report built from the bytes (FuzzedDataProvider). Promises checked: no writer crashes
// or throws; report.json is valid JSON; junit.xml is valid UTF-8 made of XML 1.0 characters only
// (any byte of the input is escaped or replaced); product.yaml parses as YAML; every line of
// results.json is valid JSON.

#include <fuzzer/FuzzedDataProvider.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "accel_dra/probe/report.h"
#include "fuzz_support.h"

namespace probe = accel_dra::probe;
using accel_dra::fuzz::Check;

namespace {

// Whether `s` is UTF-8 whose every character is an XML 1.0 Char
// (#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]).
bool IsXmlText(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp = 0;
    size_t n = 0;
    if (c < 0x80) {
      cp = c, n = 1;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F, n = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F, n = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07, n = 4;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n]) return false;  // overlong
    bool ok = cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
              (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
    if (!ok) return false;
    i += n;
  }
  return true;
}

std::string Text(FuzzedDataProvider& in) { return in.ConsumeRandomLengthString(256); }

probe::Report MakeReport(FuzzedDataProvider& in) {
  probe::Report r;
  // Our own values (build version, the --driver flag, the clock, the generated namespace) are
  // fixed; what the cluster and the pods say is fuzzed.
  r.probe_version = "0.1.0";
  r.driver = "accel-dra.dev";
  r.namespace_ = "accel-dra-probe-x7k2q";
  r.started_at = "2026-01-01T00:00:00Z";
  r.server_version = Text(in);
  r.seconds = in.ConsumeFloatingPoint<double>();
  r.interrupted = in.ConsumeBool();
  for (int n = in.ConsumeIntegralInRange(0, 3); n > 0; --n) r.cleanup.push_back(Text(in));
  for (int n = in.ConsumeIntegralInRange(0, 2); n > 0; --n) {  // what Nodes and slices say
    probe::NodeEnvironment node{Text(in), Text(in), Text(in), Text(in), Text(in), Text(in), {}};
    node.devices.push_back({Text(in), Text(in), Text(in), Text(in), in.ConsumeBool(), {Text(in)}});
    r.environment.nodes.push_back(std::move(node));
  }
  for (int n = in.ConsumeIntegralInRange(0, 5); n > 0; --n) {
    probe::CheckResult c;
    c.id = probe::kCheckIds[in.ConsumeIntegralInRange(0, 3)];
    c.status = static_cast<probe::CheckStatus>(in.ConsumeIntegralInRange(0, 3));
    c.message = Text(in);
    for (int k = in.ConsumeIntegralInRange(0, 3); k > 0; --k) c.ran.push_back(Text(in));
    for (int k = in.ConsumeIntegralInRange(0, 2); k > 0; --k) {
      c.manifests.push_back({Text(in), Text(in)});
    }
    for (int k = in.ConsumeIntegralInRange(0, 4); k > 0; --k) c.observed.push_back(Text(in));
    for (int k = in.ConsumeIntegralInRange(0, 2); k > 0; --k) {
      c.raw.push_back({Text(in), Text(in), Text(in)});
    }
    c.seconds = in.ConsumeFloatingPoint<double>();
    r.checks.push_back(std::move(c));
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  probe::Report r = MakeReport(in);
  (void)probe::RenderSummary(r);
  (void)probe::RenderEvidence(r);
  std::string json = probe::RenderJson(r);
  Check(nlohmann::json::accept(json), "report.json is not valid JSON");
  std::string junit = probe::RenderJunit(r);
  Check(IsXmlText(junit), "junit.xml has bytes that are not XML 1.0 characters in UTF-8");
  std::string events = probe::RenderUpstreamJson(r);
  for (size_t start = 0, end; start < events.size(); start = end + 1) {
    end = events.find('\n', start);
    Check(end != std::string::npos, "results.json does not end with a newline");
    Check(nlohmann::json::accept(events.substr(start, end - start)),
          "a results.json line is not valid JSON");
  }
  (void)probe::RenderUpstreamLog(r);
  std::string yaml = probe::RenderProductYaml(r);
  try {
    (void)YAML::Load(yaml);
  } catch (const std::exception& e) {
    Check(false, std::string("PRODUCT.yaml does not parse: ") + e.what());
  }
  return 0;
}
