#pragma once
// One policy for turning the version strings the host reports (kernel module versions, NVML's
// driver version, the container runtime's version, simulated profiles) into DRA `version`
// attributes, so that every version attribute compares the same way in CEL.
//
// Policy (NormalizeVersion):
//  - surrounding blanks and one leading "v"/"V" (before a digit) are ignored;
//  - the version is the leading dotted run of decimal numbers: "550.54.15" → "550.54.15",
//    "1.2.3.4" → "1.2.3" (only three components are kept), "560.35" → "560.35.0" (padded),
//    "535.104.05" → "535.104.5" (leading zeros dropped), "2.1.4~ubuntu1" → "2.1.4";
//  - a semver "-prerelease" and/or "+build" suffix right after a one- to three-component core is
//    kept (numeric prerelease identifiers lose leading zeros): "v1.2-beta" → "1.2.0-beta"; any
//    other suffix is dropped;
//  - no version at all (nullopt) when the string does not start with a number ("custom build")
//    or a component does not fit in 18 digits.
// The result is always strict semver (IsSemver) and at most 64 characters.
//
// SetVersionAttribute publishes the result as `<name>` and the raw string as `<name>Raw` whenever
// the two differ (or there is no version), so nothing the host said is lost.

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "accel_dra/model/device.h"

namespace accel_dra::discovery {

std::optional<std::string> NormalizeVersion(std::string_view raw);

enum class VersionOutcome {
  kAbsent,      // raw was empty: both attributes removed
  kExact,       // <name> = raw; <name>Raw removed
  kNormalized,  // <name> = normalised, <name>Raw = raw
  kRawOnly,     // not a version: <name> removed, <name>Raw = raw (cut to 64 bytes)
  kUnprintable  // raw has control characters or is not UTF-8: <name> only if it normalises,
                // no <name>Raw
};

// Sets (or removes) `<name>` and `<name>Raw` in `attrs` from `raw` by the policy above.
VersionOutcome SetVersionAttribute(std::map<std::string, model::AttrValue>& attrs,
                                   const std::string& name, std::string_view raw);

}  // namespace accel_dra::discovery
