// Fuzz target: the probe's RESULT parser (src/probe/inspect.cc ParseResult) and the driver
// version file reader (ParseDriverVersion), on arbitrary pod output.
//
// Promises checked: nothing crashes or throws; what ParseResult reads, FormatResult writes in a
// form that ParseResult reads back the same (for values free of carriage returns, which the
// parser strips at line ends).

#include <cstdint>
#include <string>
#include <string_view>

#include "accel_dra/probe/inspect.h"
#include "fuzz_support.h"

namespace probe = accel_dra::probe;
using accel_dra::fuzz::Check;

namespace {

bool HasCr(const probe::InspectResult& r) {
  auto cr = [](const std::string& s) { return s.find('\r') != std::string::npos; };
  if (cr(r.tool) || cr(r.hostname) || cr(r.driver_version) || cr(r.driver_version_source)) {
    return true;
  }
  for (const auto& s : r.device_nodes)
    if (cr(s)) return true;
  for (const auto& s : r.accelerator_devices)
    if (cr(s)) return true;
  for (const auto& [k, v] : r.accel_env)
    if (cr(k) || cr(v)) return true;
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)probe::ParseDriverVersion(text);
  probe::InspectResult r = probe::ParseResult(text);
  if (!r.done || HasCr(r)) return 0;
  // ENV_ keys with '=' cannot be written back unambiguously; FormatResult is for real env names.
  for (const auto& [k, v] : r.accel_env) {
    if (k.find('=') != std::string::npos || k.empty()) return 0;
  }
  probe::InspectResult again = probe::ParseResult(probe::FormatResult(r));
  Check(again.hostname == r.hostname, "hostname changed in a round trip");
  Check(again.device_nodes == r.device_nodes, "device nodes changed in a round trip");
  Check(again.accelerator_devices == r.accelerator_devices, "accelerators changed");
  Check(again.accel_env == r.accel_env, "ACCEL_* environment changed in a round trip");
  Check(again.driver_version == r.driver_version, "driver version changed in a round trip");
  Check(again.done, "DONE lost in a round trip");
  return 0;
}
