#pragma once
// How a prepared device is shared: the typed settings that the DeviceConfig API selects
// (config/device_config.h parses them), that a prepared-claim record keeps (model/prepared_claim.h)
// and that a claim's CDI spec announces to the container (cdi/cdi.h).

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace accel_dra::model {

inline constexpr int kMinPartitionCount = 2;
inline constexpr int kMaxPartitionCount = 16;

enum class SharingStrategy { kExclusive, kTimeSlicing, kSpacePartitioning };
enum class TimeSliceInterval { kDefault, kShort, kMedium, kLong };

// The API spelling of each value, also used in CDI environment variables and the checkpoint.
inline constexpr std::array<std::pair<std::string_view, SharingStrategy>, 3> kSharingStrategies = {{
    {"Exclusive", SharingStrategy::kExclusive},
    {"TimeSlicing", SharingStrategy::kTimeSlicing},
    {"SpacePartitioning", SharingStrategy::kSpacePartitioning},
}};
inline constexpr std::array<std::pair<std::string_view, TimeSliceInterval>, 4> kTimeSliceIntervals =
    {{
        {"Default", TimeSliceInterval::kDefault},
        {"Short", TimeSliceInterval::kShort},
        {"Medium", TimeSliceInterval::kMedium},
        {"Long", TimeSliceInterval::kLong},
    }};

// The names above: "Exclusive", ...; "Default", ...
std::string_view SharingStrategyName(SharingStrategy s);
std::string_view TimeSliceIntervalName(TimeSliceInterval i);
// The inverse of the names above (exact, case-sensitive); nullopt for anything else.
std::optional<SharingStrategy> ParseSharingStrategy(std::string_view name);
std::optional<TimeSliceInterval> ParseTimeSliceInterval(std::string_view name);
// The value of `nvidia-smi compute-policy --set-timeslice`: Default 0, Short 1, Medium 2, Long 3.
int TimeSliceSetting(TimeSliceInterval i);

// Sharing settings of one device. Invariants (kept by the DeviceConfig parser and the checkpoint
// codec): `interval` is kDefault unless the strategy is TimeSlicing; `partition_count` is 0
// unless the strategy is SpacePartitioning, and then kMinPartitionCount..kMaxPartitionCount.
struct SharingSettings {
  SharingStrategy strategy = SharingStrategy::kExclusive;
  TimeSliceInterval interval = TimeSliceInterval::kDefault;
  int partition_count = 0;

  // The settings as names, "" when a setting does not apply to the strategy.
  std::string StrategyName() const;
  std::string IntervalName() const;          // set only with TimeSlicing
  std::string PartitionCountString() const;  // set only with SpacePartitioning
  bool operator==(const SharingSettings&) const = default;
};

}  // namespace accel_dra::model
