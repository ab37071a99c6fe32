// Fuzz target: the CDI spec model (src/cdi: ParseJson, Validate, ToJson).
//
// Input: a CDI spec file's bytes. Promises checked (cdi/cdi.h): nothing crashes or throws; a spec
// ParseJson accepts validates; ToJson renders it and parses back to an equal spec; rendering is
// deterministic (a fixed point) and valid UTF-8 JSON.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "accel_dra/cdi/cdi.h"
#include "fuzz_support.h"

namespace cdi = accel_dra::cdi;
using accel_dra::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = cdi::ParseJson(text);
  if (!spec.ok()) return 0;
  accel_dra::Status valid = cdi::Validate(*spec);
  Check(valid.ok(), "ParseJson accepted a spec Validate rejects: " + valid.ToString());
  auto json = cdi::ToJson(*spec);
  Check(json.ok(), "ToJson failed on a valid spec: " + json.status().ToString());
  Check(nlohmann::json::accept(*json), "ToJson wrote invalid JSON");
  auto again = cdi::ParseJson(*json);
  Check(again.ok(), "ToJson's output does not parse: " + again.status().ToString());
  Check(*again == *spec, "the spec changed in a ToJson/ParseJson round trip");
  auto json2 = cdi::ToJson(*again);
  Check(json2.ok() && *json2 == *json, "ToJson is not deterministic");
  return 0;
}
