// Fuzz target: version strings (src/discovery/version.cc: kernel module, NVML and runtime
// versions) and NVML's PCI bus IDs (src/discovery/nvml.cc NormalizePciBusId).
//
// Input: one raw string as a host reports it. Promises checked (discovery/version.h, nvml.h):
// a normalised version is strict semver of at most 64 characters and normalises to itself;
// SetVersionAttribute publishes only semver versions and never loses the raw string it was given
// unless it is unprintable; a normalised bus ID has sysfs's form dddd:bb:dd.f (the domain 4 to
// 8 hex digits) and is a fixed point.

#include <cstdint>
#include <exception>
#include <map>
#include <string>
#include <string_view>

#include "accel_dra/common/names.h"
#include "accel_dra/discovery/nvml.h"
#include "accel_dra/discovery/version.h"
#include "accel_dra/model/device.h"
#include "fuzz_support.h"

namespace discovery = accel_dra::discovery;
using accel_dra::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  auto v = discovery::NormalizeVersion(raw);
  if (v) {
    Check(accel_dra::IsSemver(*v), "not semver: \"" + *v + "\"");
    Check(v->size() <= accel_dra::model::kMaxAttributeValueLength, "longer than 64: " + *v);
    auto again = discovery::NormalizeVersion(*v);
    Check(again && *again == *v, "normalising \"" + *v + "\" again changes it");
  }

  std::map<std::string, accel_dra::model::AttrValue> attrs;
  attrs.emplace("driverVersion", accel_dra::model::AttrValue::String("stale"));
  auto outcome = discovery::SetVersionAttribute(attrs, "driverVersion", raw);
  if (auto it = attrs.find("driverVersion"); it != attrs.end()) {
    Check(it->second.type() == accel_dra::model::AttrValue::Type::kVersion &&
              accel_dra::IsSemver(it->second.string_value()),
          "driverVersion is not a semver version attribute");
  }
  if (auto it = attrs.find("driverVersionRaw"); it != attrs.end()) {
    Check(it->second.string_value().size() <= accel_dra::model::kMaxAttributeValueLength,
          "driverVersionRaw longer than 64 bytes");
  }
  using Outcome = discovery::VersionOutcome;
  if (outcome == Outcome::kNormalized || outcome == Outcome::kRawOnly) {
    Check(attrs.count("driverVersionRaw") == 1, "the raw version was lost");
  }
  if (outcome == Outcome::kAbsent) Check(attrs.empty(), "an absent version left attributes");
  for (const auto& [name, value] : attrs) {
    try {
      (void)value.ToJson().dump();  // what the kube client sends: strict UTF-8
    } catch (const std::exception& e) {
      Check(false, name + " cannot be sent: " + e.what());
    }
  }

  if (auto bus = discovery::NormalizePciBusId(raw)) {
    // Linux names domains with at least 4 hex digits (VMD domains have 5: "10000:e1:00.0").
    Check(bus->size() >= 12 && bus->size() <= 16 && bus->substr(bus->size() - 8, 1) == ":",
          "bus ID not in the form dddd:bb:dd.f: " + *bus);
    auto again = discovery::NormalizePciBusId(*bus);
    Check(again && *again == *bus, "normalising bus ID " + *bus + " again changes it");
  }
  return 0;
}
