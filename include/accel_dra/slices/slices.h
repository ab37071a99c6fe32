#pragma once
// Turning an Inventory into ResourceSlice objects that the apiserver accepts.
//
// Promises: every device that comes out has a DNS-label name, at most 32 attributes+capacities,
// valid qualified names, string/version values of at most 64 characters and strict-semver
// versions; anything that would break those rules is dropped (a whole device only when its name
// is invalid, otherwise just the offending attribute) and reported, so one bad value never keeps
// the rest of the node's devices from being published. Output is deterministic.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "accel_dra/model/device.h"

namespace accel_dra::slices {

using Json = nlohmann::json;

inline constexpr size_t kMaxDevicesPerSlice = 128;
inline constexpr size_t kMaxAttributesAndCapacities = 32;
inline constexpr size_t kMaxAttributeValueLength = 64;

struct PoolOptions {
  std::string driver;
  std::string node_name;
  std::string pool_name;  // defaults to node_name when empty
  size_t max_devices_per_slice = kMaxDevicesPerSlice;
  std::optional<std::string> node_uid;  // makes the Node the slices' owner (garbage collection)

  const std::string& pool() const { return pool_name.empty() ? node_name : pool_name; }
};

// Removes what the apiserver would reject from `device`; returns one message per removal.
// A device whose name is invalid gets `keep=false`.
struct SanitizeResult {
  bool keep = true;
  std::vector<std::string> problems;
};
SanitizeResult SanitizeDevice(model::Device& device);

// The v1 wire form of one device.
Json DeviceToJson(const model::Device& device);

// The devices of the pool, split into chunks of at most max_devices_per_slice (sorted by name).
struct DesiredPool {
  std::vector<std::vector<Json>> chunks;
  std::vector<std::string> problems;  // what SanitizeDevice removed, with the device name
};
DesiredPool BuildPool(const model::Inventory& inventory, const PoolOptions& options);

// A complete ResourceSlice object (v1 shape) for one chunk of the pool.
Json MakeSlice(const PoolOptions& options, const std::vector<Json>& devices, int64_t generation,
               int64_t slice_count);

// Label put on every slice we publish.
inline constexpr const char* kManagedByLabel = "app.kubernetes.io/managed-by";
inline constexpr const char* kManagedByValue = "accel-dra";

}  // namespace accel_dra::slices
