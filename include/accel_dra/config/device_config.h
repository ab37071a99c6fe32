#pragma once
// The driver's opaque device configuration API and its resolution against a claim's allocation.
//
//   apiVersion: accel-dra.dev/v1alpha1
//   kind: DeviceConfig
//   sharing:
//     strategy: Exclusive | TimeSlicing | SpacePartitioning   # default Exclusive
//     timeSlicing:                                            # only with TimeSlicing
//       interval: Default | Short | Medium | Long             # default Default
//     spacePartitioning:                                      # only with SpacePartitioning
//       partitionCount: 2..16                                 # required there
//
// Parsing is strict: apiVersion and kind are required and must match, unknown fields at any level,
// wrong JSON types, unknown enum values (case-sensitive), settings for a strategy that is not
// selected and out-of-range counts are all InvalidArgument errors whose message names the field
// path, what was given and what is accepted, so that it is useful in `kubectl describe pod`.
// JSON null counts as "not set". Duplicate keys cannot be detected (the parameters arrive parsed).
//
// Resolution (ResolveDeviceConfigs): for every allocation-result request of this driver, the
// effective configuration is the single best-matching config entry of this driver (entries are
// not merged field by field), ranked
//   1. source: FromClaim beats FromClass;
//   2. within a source, how it names the request: the exact request name ("main/sub") beats the
//      base request name ("main", which covers all its subrequests), which beats an empty
//      `requests` list (applies to every request);
//   3. within equal rank, the later entry in config[] wins.
// Without a matching entry the default (Exclusive) applies. Entries of other drivers are skipped
// silently, as are entries without `opaque` (non-opaque config kinds the driver does not handle).
// Invalid-config policy: every config entry of this driver is parsed and validated, including
// entries that are overridden or that match none of this driver's requests; the first invalid one
// fails the whole claim. A broken config must never be silently ignored, since whether it is
// overridden depends on details the user may not see (class configs, request names).

#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/common/status.h"
#include "accel_dra/model/sharing.h"

namespace accel_dra::config {

inline constexpr std::string_view kApiVersion = "accel-dra.dev/v1alpha1";
inline constexpr std::string_view kKind = "DeviceConfig";
inline constexpr int kMinPartitionCount = model::kMinPartitionCount;
inline constexpr int kMaxPartitionCount = model::kMaxPartitionCount;

// The sharing types and their names are the model's (model/sharing.h), spelled here as well
// because they are this API's vocabulary.
using model::SharingStrategy;
using model::SharingStrategyName;  // "Exclusive", ...
using model::TimeSliceInterval;
using model::TimeSliceIntervalName;  // "Default", ...

// A validated, defaulted configuration: today exactly the device's sharing settings
// (model::SharingSettings, with their invariants and names), which is also what a prepared
// device records. Settings other than sharing would be added here.
struct DeviceConfig : model::SharingSettings {
  bool operator==(const DeviceConfig&) const = default;
};

// Parses `opaque.parameters` (a JSON object).
Expected<DeviceConfig> ParseDeviceConfig(const nlohmann::json& parameters);
// Same, from JSON text.
Expected<DeviceConfig> ParseDeviceConfigJson(std::string_view json_text);

// Computes the effective config of each of `request_names` (allocation-result request names of
// this driver; "main" or "main/sub") from `configs`, the JSON array
// status.allocation.devices.config[]. Every name in `request_names` appears in the result.
// Errors: InvalidArgument naming the config entry (index, source, requests) and the field.
Expected<std::map<std::string, DeviceConfig>> ResolveDeviceConfigs(
    const nlohmann::json& configs, const std::vector<std::string>& request_names,
    std::string_view driver_name);

// Convenience for a claim's status.allocation.devices object: takes the request names of the
// results whose `driver` is `driver_name` and resolves `config` for them.
Expected<std::map<std::string, DeviceConfig>> ResolveAllocationConfigs(
    const nlohmann::json& allocation_devices, std::string_view driver_name);

// Validates the configs of this driver in a claim's spec (`configs` is spec.devices.config[] of
// a ResourceClaim, or the same inside a ResourceClaimTemplate; `path` names it in messages) with
// the checks and parser messages of ResolveDeviceConfigs, minus the `source` field, which only
// allocations have. This is what the admission webhook rejects a claim with, so that a user
// sees at creation what prepare would report when the pod starts.
Status ValidateSpecConfigs(const nlohmann::json& configs, std::string_view driver_name,
                           std::string_view path);

}  // namespace accel_dra::config
