#pragma once
// What every discovery backend promises about the devices it returns, checked on fuzzed hosts:
// names are unique DNS labels, versions are strict semver, and the publish path (slices) turns
// them into ResourceSlice devices whose JSON can be sent (nlohmann's strict dump, as the kube
// client sends bodies: invalid UTF-8 would throw there).

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "accel_dra/common/names.h"
#include "accel_dra/model/device.h"
#include "accel_dra/slices/slices.h"
#include "fuzz_support.h"

namespace accel_dra::fuzz {

inline void CheckDiscoveredDevices(const std::vector<model::Device>& devices) {
  std::set<std::string> names;
  for (const auto& d : devices) {
    Check(IsDnsLabel(d.name), "device name is not a DNS label: \"" + d.name + "\"");
    Check(names.insert(d.name).second, "device name twice: " + d.name);
    for (const auto& [key, value] : d.attributes) {
      if (value.type() == model::AttrValue::Type::kVersion) {
        Check(IsSemver(value.string_value()),
              "attribute " + key + " is not semver: \"" + value.string_value() + "\"");
      }
    }
  }
  slices::PoolOptions options;
  options.driver = "accel-dra.dev";
  options.node_name = "node-a";
  auto pool = slices::BuildPool(model::Inventory(devices), options);
  int64_t index = 0;
  for (const auto& chunk : pool.chunks) {
    nlohmann::json slice = slices::MakeSlice(options, chunk, 1, pool.chunks.size());
    std::string body;
    try {
      body = slice.dump();
    } catch (const nlohmann::json::exception& e) {
      Check(false, std::string("a ResourceSlice body cannot be serialised: ") + e.what());
    }
    Check(!body.empty(), "empty slice " + std::to_string(index++));
  }
}

}  // namespace accel_dra::fuzz
