// Fuzz target: DeviceConfig parsing and resolution (src/config).
//
// Input: JSON text. It is parsed as DeviceConfig parameters; when it is an object it is also
// resolved as a claim's status.allocation.devices, and when it is an array as its config[].
// Promises checked: nothing crashes or throws; an accepted config keeps the model's invariants
// (model/sharing.h); a resolution that succeeds answers every request name it was asked for.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/config/device_config.h"
#include "fuzz_support.h"

namespace config = accel_dra::config;
using accel_dra::fuzz::Check;
using Json = nlohmann::json;

namespace {

constexpr std::string_view kDriver = "accel-dra.dev";

void CheckInvariants(const config::DeviceConfig& c) {
  if (c.strategy == config::SharingStrategy::kSpacePartitioning) {
    Check(c.partition_count >= config::kMinPartitionCount &&
              c.partition_count <= config::kMaxPartitionCount,
          "partitionCount out of range was accepted: " + std::to_string(c.partition_count));
  } else {
    Check(c.partition_count == 0, "partitionCount set without SpacePartitioning");
  }
  if (c.strategy != config::SharingStrategy::kTimeSlicing) {
    Check(c.interval == config::TimeSliceInterval::kDefault, "interval set without TimeSlicing");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto c = config::ParseDeviceConfigJson(text); c.ok()) CheckInvariants(*c);

  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  if (auto c = config::ParseDeviceConfig(j); c.ok()) CheckInvariants(*c);
  if (j.is_object()) {
    if (auto r = config::ResolveAllocationConfigs(j, kDriver); r.ok()) {
      for (const auto& [request, c] : *r) CheckInvariants(c);
    }
  }
  if (j.is_array()) {
    const std::vector<std::string> requests = {"main", "main/sub", "other", ""};
    auto r = config::ResolveDeviceConfigs(j, requests, kDriver);
    if (r.ok()) {
      for (const auto& name : requests) {
        Check(r->count(name) == 1, "request \"" + name + "\" has no resolved config");
      }
      Check(r->size() == requests.size(), "resolution answered requests it was not asked for");
      for (const auto& [request, c] : *r) CheckInvariants(c);
    }
  }
  return 0;
}
