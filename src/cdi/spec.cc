// CDI spec model: minimum versions and load-time validation.

#include <set>
#include <string>

#include "accel_dra/cdi/cdi.h"
#include "accel_dra/common/strings.h"

namespace accel_dra::cdi {
namespace {

void Require(std::string& version, std::string_view needed) {
  if (CompareVersions(needed, version) > 0) version = std::string(needed);
}

void EditsVersion(const ContainerEdits& e, std::string& version) {
  for (const auto& m : e.mounts) {
    if (!m.type.empty()) Require(version, "0.4.0");
  }
  for (const auto& d : e.device_nodes) {
    if (!d.host_path.empty()) Require(version, "0.5.0");
  }
  if (!e.additional_gids.empty() || e.intel_rdt.has_value()) Require(version, "0.7.0");
  if (e.intel_rdt.has_value() &&
      (!e.intel_rdt->schemata.empty() || e.intel_rdt->enable_monitoring)) {
    Require(version, "1.1.0");
  }
  if (!e.net_devices.empty()) Require(version, "1.1.0");
}

Status ValidateEnvList(const std::vector<std::string>& env, std::string_view where) {
  for (const auto& v : env) {
    auto eq = v.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgument(std::string(where) + ": invalid environment variable " + Quote(v) +
                             " (expected KEY=VALUE with a non-empty KEY)");
    }
  }
  return Status::Ok();
}

Status ValidateEdits(const ContainerEdits& e, const std::string& where) {
  RETURN_IF_ERROR(ValidateEnvList(e.env, where));
  for (const auto& d : e.device_nodes) {
    if (d.path.empty()) return InvalidArgument(where + ": device node with an empty path");
    if (!(d.type.empty() || d.type == "b" || d.type == "c" || d.type == "u" || d.type == "p")) {
      return InvalidArgument(where + ": device node " + Quote(d.path) + " has invalid type " +
                             Quote(d.type) + " (accepted: b, c, u, p or empty)");
    }
    for (char c : d.permissions) {
      if (c != 'r' && c != 'w' && c != 'm') {
        return InvalidArgument(where + ": device node " + Quote(d.path) +
                               " has invalid permissions " + Quote(d.permissions) +
                               " (accepted: a combination of r, w and m)");
      }
    }
  }
  for (const auto& h : e.hooks) {
    static const std::set<std::string, std::less<>> kHookNames = {
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"};
    if (kHookNames.find(h.hook_name) == kHookNames.end()) {
      return InvalidArgument(where + ": invalid hook name " + Quote(h.hook_name) +
                             " (accepted: prestart, createRuntime, createContainer, "
                             "startContainer, poststart, poststop)");
    }
    if (h.path.empty()) {
      return InvalidArgument(where + ": hook " + Quote(h.hook_name) + " has an empty path");
    }
    RETURN_IF_ERROR(ValidateEnvList(h.env, where + ": hook " + Quote(h.hook_name)));
  }
  for (const auto& m : e.mounts) {
    if (m.host_path.empty()) return InvalidArgument(where + ": mount with an empty hostPath");
    if (m.container_path.empty()) {
      return InvalidArgument(where + ": mount of " + Quote(m.host_path) +
                             " has an empty containerPath");
    }
  }
  for (const auto& n : e.net_devices) {
    if (n.host_interface_name.empty() || n.name.empty()) {
      return InvalidArgument(where +
                             ": net device needs both hostInterfaceName and name to be set");
    }
  }
  return Status::Ok();
}

Status ValidateAnnotations(const std::map<std::string, std::string>& annotations,
                           const std::string& where) {
  for (const auto& [key, value] : annotations) {
    (void)value;
    if (key.empty()) return InvalidArgument(where + ": annotation with an empty key");
  }
  return Status::Ok();
}

}  // namespace

bool ContainerEdits::empty() const {
  return env.empty() && device_nodes.empty() && hooks.empty() && mounts.empty() &&
         additional_gids.empty() && !intel_rdt.has_value() && net_devices.empty();
}

std::string MinimumVersion(const Spec& spec) {
  std::string version(kFloorVersion);
  EditsVersion(spec.container_edits, version);
  if (!spec.annotations.empty()) Require(version, "0.6.0");
  auto slash = spec.kind.find('/');
  if (slash != std::string::npos && spec.kind.find('.', slash + 1) != std::string::npos) {
    Require(version, "0.6.0");
  }
  for (const auto& d : spec.devices) {
    if (!d.name.empty() && d.name.front() >= '0' && d.name.front() <= '9') {
      Require(version, "0.5.0");
    }
    if (!d.annotations.empty()) Require(version, "0.6.0");
    EditsVersion(d.container_edits, version);
  }
  return version;
}

Status Validate(const Spec& spec) {
  RETURN_IF_ERROR(ValidateKind(spec.kind));
  if (!spec.cdi_version.empty()) {
    if (!IsKnownVersion(spec.cdi_version)) {
      return InvalidArgument("CDI spec of kind " + spec.kind + ": unknown cdiVersion " +
                             Quote(spec.cdi_version) + " (known: 0.3.0 to " +
                             std::string(kLatestVersion) + ")");
    }
    std::string needed = MinimumVersion(spec);
    if (CompareVersions(spec.cdi_version, needed) < 0) {
      return InvalidArgument("CDI spec of kind " + spec.kind + ": cdiVersion " + spec.cdi_version +
                             " is too old for the features it uses; it needs " + needed +
                             " or newer");
    }
  }
  std::string where = "CDI spec of kind " + spec.kind;
  RETURN_IF_ERROR(ValidateAnnotations(spec.annotations, where));
  RETURN_IF_ERROR(ValidateEdits(spec.container_edits, where));
  if (spec.devices.empty()) {
    return InvalidArgument(where + ": it has no devices (a CDI spec needs at least one)");
  }
  std::set<std::string, std::less<>> names;
  for (const auto& d : spec.devices) {
    RETURN_IF_ERROR(ValidateDeviceName(d.name).WithContext(where));
    if (!names.insert(d.name).second) {
      return InvalidArgument(where + ": device name " + Quote(d.name) + " appears twice");
    }
    std::string dwhere = where + ", device " + d.name;
    if (d.container_edits.empty()) {
      return InvalidArgument(dwhere +
                             ": device has no container edits (a CDI device must change "
                             "the container in some way)");
    }
    RETURN_IF_ERROR(ValidateAnnotations(d.annotations, dwhere));
    RETURN_IF_ERROR(ValidateEdits(d.container_edits, dwhere));
  }
  return Status::Ok();
}

}  // namespace accel_dra::cdi
