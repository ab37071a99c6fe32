#pragma once
// The objects accel-dra-probe creates, built as resource.k8s.io/v1 and core/v1 JSON. Pure
// functions (no cluster), unit-tested in tests/unit/probe.
//
// Promises: every Pod has terminationGracePeriodSeconds 1, no privileged containers and no
// hostPath volumes (PodUsesPrivilegeOrHostPath checks that), restartPolicy Never, the probe label,
// and runs InspectCommand(), which works in any busybox-like image: it runs the inspect tool when
// the driver mounted it at kInspectToolPath, else a shell fallback printing the same RESULT keys.

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace accel_dra::probe {

using Json = nlohmann::json;

// Label on every object the probe creates (value: the run's namespace).
inline constexpr std::string_view kProbeLabel = "accel-dra.dev/probe";
// The pod-level claim name (and the container claim reference) the probe uses.
inline constexpr std::string_view kClaimRef = "accel";

// device.driver == "<driver>"
std::string DriverCel(std::string_view driver);
// device.attributes["<driver>"].driverVersion.compareTo(semver("<min>")) >= 0
std::string MinDriverVersionCel(std::string_view driver, std::string_view min_version);

Json DeviceClassManifest(const std::string& name, const std::vector<std::string>& cel,
                         const std::string& label_value);
Json ClaimTemplateManifest(const std::string& name, const std::string& device_class, int count,
                           const std::string& label_value);
// `config` is null or one entry of spec.devices.config (see SharingConfig).
Json ClaimManifest(const std::string& name, const std::string& device_class, int count,
                   const Json& config, const std::string& label_value);
// An opaque accel-dra.dev/v1alpha1 DeviceConfig entry for the claim's request: strategy is
// "TimeSlicing" (interval used) or "SpacePartitioning" (partition_count used).
Json SharingConfig(const std::string& driver, const std::string& strategy,
                   const std::string& interval, int partition_count);

struct PodSpec {
  std::string name;
  std::string image;
  std::string pull_policy = "IfNotPresent";
  // Containers: name → whether it references the pod's claim.
  std::vector<std::pair<std::string, bool>> containers;
  // The pod's claim source: exactly one of these, or neither for a pod without a claim.
  std::string claim_template;
  std::string claim_name;
  std::map<std::string, std::string> node_selector;
  std::string label_value;
};
Json PodManifest(const PodSpec& spec);

// sh -c script: inspect tool or the shell fallback, then wait for SIGTERM.
std::string InspectCommand();
// The shell fallback alone (prints RESULT lines, INSPECT_TOOL=shell).
std::string ShellInspectScript();

// True (with the reason) when a pod manifest asks for privileged mode or a hostPath volume.
bool PodUsesPrivilegeOrHostPath(const Json& pod, std::string* why);

// Numeric comparison of dotted versions by their numeric prefix ("v550.54.15" vs "550.54"):
// <0, 0, >0. Missing components count as 0; a leading "v" is ignored; stops at the first
// non-numeric component.
int CompareVersions(std::string_view a, std::string_view b);

}  // namespace accel_dra::probe
