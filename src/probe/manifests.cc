// Builders for the objects accel-dra-probe creates (see manifests.h).

#include "accel_dra/probe/manifests.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "accel_dra/probe/inspect.h"

namespace accel_dra::probe {
namespace {

Json Meta(const std::string& name, const std::string& label_value) {
  return {{"name", name}, {"labels", {{std::string(kProbeLabel), label_value}}}};
}

Json Request(const std::string& device_class, int count) {
  return Json::array({{{"name", std::string(kClaimRef)},
                       {"exactly",
                        {{"deviceClassName", device_class},
                         {"allocationMode", "ExactCount"},
                         {"count", count}}}}});
}

std::vector<uint64_t> Components(std::string_view v) {
  if (!v.empty() && (v[0] == 'v' || v[0] == 'V')) v.remove_prefix(1);
  std::vector<uint64_t> out;
  size_t i = 0;
  while (i < v.size()) {
    if (v[i] < '0' || v[i] > '9') break;
    uint64_t n = 0;  // saturates at UINT64_MAX (beyond what Kubernetes' semver holds)
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') {
      const uint64_t digit = static_cast<uint64_t>(v[i] - '0');
      n = n > (UINT64_MAX - digit) / 10 ? UINT64_MAX : n * 10 + digit;
      ++i;
    }
    out.push_back(n);
    if (i < v.size() && v[i] == '.') {
      ++i;
    } else {
      break;
    }
  }
  return out;
}

}  // namespace

std::string DriverCel(std::string_view driver) {
  return "device.driver == \"" + std::string(driver) + "\"";
}

std::string MinDriverVersionCel(std::string_view driver, std::string_view min_version) {
  return "device.attributes[\"" + std::string(driver) + "\"].driverVersion.compareTo(semver(\"" +
         std::string(min_version) + "\")) >= 0";
}

Json DeviceClassManifest(const std::string& name, const std::vector<std::string>& cel,
                         const std::string& label_value) {
  Json selectors = Json::array();
  for (const auto& e : cel) selectors.push_back({{"cel", {{"expression", e}}}});
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "DeviceClass"},
          {"metadata", Meta(name, label_value)},
          {"spec", {{"selectors", selectors}}}};
}

Json ClaimTemplateManifest(const std::string& name, const std::string& device_class, int count,
                           const std::string& label_value) {
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceClaimTemplate"},
          {"metadata", Meta(name, label_value)},
          {"spec",
           {{"metadata", {{"labels", {{std::string(kProbeLabel), label_value}}}}},
            {"spec", {{"devices", {{"requests", Request(device_class, count)}}}}}}}};
}

Json ClaimManifest(const std::string& name, const std::string& device_class, int count,
                   const Json& config, const std::string& label_value) {
  Json devices = {{"requests", Request(device_class, count)}};
  if (!config.is_null()) devices["config"] = Json::array({config});
  return {{"apiVersion", "resource.k8s.io/v1"},
          {"kind", "ResourceClaim"},
          {"metadata", Meta(name, label_value)},
          {"spec", {{"devices", devices}}}};
}

Json SharingConfig(const std::string& driver, const std::string& strategy,
                   const std::string& interval, int partition_count) {
  Json sharing = {{"strategy", strategy}};
  if (strategy == "TimeSlicing") sharing["timeSlicing"] = {{"interval", interval}};
  if (strategy == "SpacePartitioning") {
    sharing["spacePartitioning"] = {{"partitionCount", partition_count}};
  }
  return {{"requests", Json::array({std::string(kClaimRef)})},
          {"opaque",
           {{"driver", driver},
            {"parameters",
             {{"apiVersion", "accel-dra.dev/v1alpha1"},
              {"kind", "DeviceConfig"},
              {"sharing", sharing}}}}}};
}

std::string ShellInspectScript() {
  // Same keys and order as FormatResult (inspect.cc); busybox sh, find, sort, sed, head.
  return R"SH(echo "RESULT: INSPECT_VERSION=1"
echo "RESULT: INSPECT_TOOL=shell"
echo "RESULT: HOSTNAME=$(hostname 2>/dev/null)"
n=0; a=0; nodes=""; accs=""
for d in $(find /dev -type c 2>/dev/null | sort); do
  case "$d" in /dev/null|/dev/zero|/dev/full|/dev/random|/dev/urandom|/dev/tty|/dev/console|/dev/ptmx|/dev/pts/*|/dev/shm/*|/dev/mqueue/*|/dev/fd/*) continue ;; esac
  n=$((n+1)); nodes="${nodes:+$nodes,}$d"
  case "$d" in /dev/nvidia*|/dev/dri/card*|/dev/dri/renderD*|/dev/kfd|/dev/accel/accel*|/dev/accel-sim*) a=$((a+1)); accs="${accs:+$accs,}$d" ;; esac
done
echo "RESULT: DEVICE_NODE_COUNT=$n"
echo "RESULT: DEVICE_NODES=$nodes"
echo "RESULT: ACCELERATOR_COUNT=$a"
echo "RESULT: ACCELERATOR_DEVICES=$accs"
echo "RESULT: ACCEL_ENV_COUNT=$(env | grep -c '^ACCEL_')"
env | grep '^ACCEL_' | sort | sed 's/^/RESULT: ENV_/'
v=""; src=none
for f in /run/accel-dra/driver/version /run/accel-dra/driver/driver-version /proc/driver/nvidia/version /sys/module/nvidia/version /sys/module/amdgpu/version /sys/module/xe/version /sys/module/i915/version /sys/module/habanalabs/version; do
  if [ -r "$f" ]; then
    l=$(head -n 1 "$f")
    case "$l" in *"Kernel Module"*) v=$(echo "$l" | sed 's/.*Kernel Module *\([0-9][0-9.]*\).*/\1/') ;; *) v=$(echo "$l" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//') ;; esac
    if [ -n "$v" ]; then src=$f; break; fi
  fi
done
echo "RESULT: DRIVER_VERSION=$v"
echo "RESULT: DRIVER_VERSION_SOURCE=$src"
echo "RESULT: RUNTIME_VERSION=$(head -n 1 /run/accel-dra/driver/runtime-version 2>/dev/null)"
echo "RESULT: DONE=true"
)SH";
}

std::string InspectCommand() {
  const std::string tool(kInspectToolPath);
  return "if [ -x " + tool + " ]; then " + tool + "; else\n" + ShellInspectScript() +
         "fi\ntrap 'exit 0' TERM; sleep 86400 & wait\n";
}

Json PodManifest(const PodSpec& spec) {
  Json containers = Json::array();
  for (const auto& [name, with_claim] : spec.containers) {
    Json c = {{"name", name},
              {"image", spec.image},
              {"imagePullPolicy", spec.pull_policy},
              {"command", Json::array({"sh", "-c", InspectCommand()})},
              {"securityContext", {{"privileged", false}, {"allowPrivilegeEscalation", false}}}};
    if (with_claim)
      c["resources"] = {{"claims", Json::array({{{"name", std::string(kClaimRef)}}})}};
    containers.push_back(std::move(c));
  }
  Json pod_spec = {
      {"terminationGracePeriodSeconds", 1},
      {"restartPolicy", "Never"},
      {"automountServiceAccountToken", false},
      {"containers", containers},
      {"tolerations", Json::array({{{"operator", "Exists"}, {"effect", "NoSchedule"}}})}};
  if (!spec.claim_template.empty() || !spec.claim_name.empty()) {
    Json claim = {{"name", std::string(kClaimRef)}};
    if (!spec.claim_template.empty()) {
      claim["resourceClaimTemplateName"] = spec.claim_template;
    } else {
      claim["resourceClaimName"] = spec.claim_name;
    }
    pod_spec["resourceClaims"] = Json::array({claim});
  }
  if (!spec.node_selector.empty()) pod_spec["nodeSelector"] = spec.node_selector;
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", spec.name}, {"labels", {{std::string(kProbeLabel), spec.label_value}}}}},
          {"spec", pod_spec}};
}

bool PodUsesPrivilegeOrHostPath(const Json& pod, std::string* why) {
  const Json spec = pod.value("spec", Json::object());
  for (const auto& v : spec.value("volumes", Json::array())) {
    if (v.contains("hostPath")) {
      if (why) *why = "volume " + v.value("name", "?") + " is a hostPath";
      return true;
    }
  }
  for (const char* list : {"containers", "initContainers"}) {
    for (const auto& c : spec.value(list, Json::array())) {
      const Json sc = c.value("securityContext", Json::object());
      if (sc.value("privileged", false)) {
        if (why) *why = "container " + c.value("name", "?") + " is privileged";
        return true;
      }
    }
  }
  if (spec.value("hostPID", false) || spec.value("hostIPC", false)) {
    if (why) *why = "the pod shares the host's PID or IPC namespace";
    return true;
  }
  return false;
}

int CompareVersions(std::string_view a, std::string_view b) {
  auto x = Components(a), y = Components(b);
  size_t n = std::max(x.size(), y.size());
  x.resize(n, 0);
  y.resize(n, 0);
  for (size_t i = 0; i < n; ++i) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

}  // namespace accel_dra::probe
