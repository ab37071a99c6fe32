#pragma once
// Node-level attributes put on every published device: what the Node object says about its
// container runtime, whether that runtime injects CDI devices, and the sharing strategies this
// driver honours. Pure functions: the plugin feeds them the Node it watches (see
// docs/attributes.md for the rules and their sources).
//
//   containerRuntime            string   "containerd" (the scheme of status.nodeInfo.
//                                        containerRuntimeVersion, "containerd://2.1.4")
//   containerRuntimeVersion     version  "2.1.4" (policy of discovery/version.h)
//   containerRuntimeVersionRaw  string   only when the published version differs from the raw one
//   cdiEnabled                  bool     only when it can be known (CdiEnabledFor)
//   sharingMode                 string   "Exclusive,TimeSlicing,SpacePartitioning"

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "accel_dra/model/device.h"

namespace accel_dra::discovery {

// The DeviceConfig sharing strategies (config/device_config.h) the driver accepts for every
// device, as one comma-separated string, for CEL such as
// `device.attributes["<driver>"].sharingMode.contains("TimeSlicing")`.
inline constexpr std::string_view kSharingModes = "Exclusive,TimeSlicing,SpacePartitioning";

struct ContainerRuntime {
  std::string name;     // "containerd", "cri-o", "docker", ...
  std::string version;  // the raw version part, "2.1.4"
};
// "containerd://2.1.4" → {"containerd", "2.1.4"}. nullopt unless it is "<name>://<version>" with
// a name of lower-case letters, digits, '-', '.', '_' (at most 63).
std::optional<ContainerRuntime> ParseContainerRuntimeVersion(std::string_view s);

// What a containerd config.toml says about `enable_cdi` (the last uncommented assignment wins):
// true/false, nullopt when it does not set it. A line scan, not a TOML parser: drop-in files
// (`imports`) are not followed.
std::optional<bool> ContainerdConfigEnableCdi(std::string_view toml);

// The containerd configuration as the plugin could see it.
struct ContainerdConfig {
  bool readable = false;           // the file was read (false: missing or unreadable)
  std::optional<bool> enable_cdi;  // ContainerdConfigEnableCdi of its content
};

// Whether the runtime injects CDI devices, nullopt when that cannot be known:
//   containerd >= 2.0: true unless the config sets enable_cdi = false (default on since 2.0);
//   containerd 1.7.x:  the config's enable_cdi (default off), unknown when the config is unread;
//   containerd < 1.7:  false (no CDI support);
//   cri-o >= 1.23:     true (CDI is always on, no setting); cri-o < 1.23: false;
//   anything else (docker via cri-dockerd, unknown runtimes, no version): unknown.
std::optional<bool> CdiEnabledFor(const ContainerRuntime& runtime, const ContainerdConfig& config);

struct NodeAttributes {
  // In priority order: when a device has no room left for all of them (32 attributes and
  // capacities), the later ones are left out first.
  std::vector<std::pair<std::string, model::AttrValue>> attributes;
  // Things worth one log line each (e.g. a runtime version that is not semver).
  std::vector<std::string> notes;
  bool operator==(const NodeAttributes& o) const = default;
};
// The attributes for a Node object (nullptr/non-object: only sharingMode, with a note).
NodeAttributes NodeAttributesFromNode(const nlohmann::json& node, const ContainerdConfig& config);
// Without a Node (the `discover` subcommand): sharingMode only.
NodeAttributes DriverOnlyAttributes();

// A copy of `inventory` in which every device also has `extra` (a device's own attribute of the
// same name wins), adding only while the device stays within `max_total` attributes+capacities.
// The names left out on some device are appended to *left_out (once each) when it is not null.
model::Inventory WithNodeAttributes(const model::Inventory& inventory, const NodeAttributes& extra,
                                    size_t max_total, std::vector<std::string>* left_out = nullptr);

}  // namespace accel_dra::discovery
