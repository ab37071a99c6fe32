#include "accel_dra/model/sharing.h"

namespace accel_dra::model {
namespace {

template <typename E, size_t N>
std::string_view NameOf(const std::array<std::pair<std::string_view, E>, N>& table, E value) {
  for (const auto& [name, e] : table) {
    if (e == value) return name;
  }
  return "Unknown";
}

template <typename E, size_t N>
std::optional<E> ValueOf(const std::array<std::pair<std::string_view, E>, N>& table,
                         std::string_view name) {
  for (const auto& [n, e] : table) {
    if (n == name) return e;
  }
  return std::nullopt;
}

}  // namespace

std::string_view SharingStrategyName(SharingStrategy s) { return NameOf(kSharingStrategies, s); }
std::string_view TimeSliceIntervalName(TimeSliceInterval i) {
  return NameOf(kTimeSliceIntervals, i);
}

std::optional<SharingStrategy> ParseSharingStrategy(std::string_view name) {
  return ValueOf(kSharingStrategies, name);
}
std::optional<TimeSliceInterval> ParseTimeSliceInterval(std::string_view name) {
  return ValueOf(kTimeSliceIntervals, name);
}

int TimeSliceSetting(TimeSliceInterval i) {
  switch (i) {
    case TimeSliceInterval::kDefault:
      return 0;
    case TimeSliceInterval::kShort:
      return 1;
    case TimeSliceInterval::kMedium:
      return 2;
    case TimeSliceInterval::kLong:
      return 3;
  }
  return 0;
}

std::string SharingSettings::StrategyName() const {
  return std::string(SharingStrategyName(strategy));
}

std::string SharingSettings::IntervalName() const {
  if (strategy != SharingStrategy::kTimeSlicing) return "";
  return std::string(TimeSliceIntervalName(interval));
}

std::string SharingSettings::PartitionCountString() const {
  if (strategy != SharingStrategy::kSpacePartitioning) return "";
  return std::to_string(partition_count);
}

}  // namespace accel_dra::model
