// CDI spec <-> JSON. Rendering uses insertion-ordered objects so the bytes depend only on the
// spec; parsing is strict (unknown fields and wrong types are errors). No exception leaves here.

#include <exception>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "accel_dra/cdi/cdi.h"

namespace accel_dra::cdi {
namespace {

using Json = nlohmann::ordered_json;

// ---- Rendering -----------------------------------------------------------------------------

void PutStrings(Json& obj, const char* key, const std::vector<std::string>& v) {
  if (!v.empty()) obj[key] = v;
}
void PutString(Json& obj, const char* key, const std::string& v) {
  if (!v.empty()) obj[key] = v;
}
void PutAnnotations(Json& obj, const std::map<std::string, std::string>& a) {
  if (a.empty()) return;
  Json m = Json::object();
  for (const auto& [k, v] : a) m[k] = v;  // std::map: sorted, deterministic
  obj["annotations"] = std::move(m);
}

Json RenderEdits(const ContainerEdits& e) {
  Json out = Json::object();
  PutStrings(out, "env", e.env);
  if (!e.device_nodes.empty()) {
    Json nodes = Json::array();
    for (const auto& d : e.device_nodes) {
      Json n = Json::object();
      n["path"] = d.path;
      PutString(n, "hostPath", d.host_path);
      PutString(n, "type", d.type);
      if (d.major) n["major"] = *d.major;
      if (d.minor) n["minor"] = *d.minor;
      if (d.file_mode) n["fileMode"] = *d.file_mode;
      PutString(n, "permissions", d.permissions);
      if (d.uid) n["uid"] = *d.uid;
      if (d.gid) n["gid"] = *d.gid;
      nodes.push_back(std::move(n));
    }
    out["deviceNodes"] = std::move(nodes);
  }
  if (!e.hooks.empty()) {
    Json hooks = Json::array();
    for (const auto& h : e.hooks) {
      Json j = Json::object();
      j["hookName"] = h.hook_name;
      j["path"] = h.path;
      PutStrings(j, "args", h.args);
      PutStrings(j, "env", h.env);
      if (h.timeout) j["timeout"] = *h.timeout;
      hooks.push_back(std::move(j));
    }
    out["hooks"] = std::move(hooks);
  }
  if (!e.mounts.empty()) {
    Json mounts = Json::array();
    for (const auto& m : e.mounts) {
      Json j = Json::object();
      j["hostPath"] = m.host_path;
      j["containerPath"] = m.container_path;
      PutStrings(j, "options", m.options);
      PutString(j, "type", m.type);
      mounts.push_back(std::move(j));
    }
    out["mounts"] = std::move(mounts);
  }
  if (!e.additional_gids.empty()) out["additionalGids"] = e.additional_gids;
  if (e.intel_rdt) {
    Json r = Json::object();
    PutString(r, "closID", e.intel_rdt->clos_id);
    PutString(r, "l3CacheSchema", e.intel_rdt->l3_cache_schema);
    PutString(r, "memBwSchema", e.intel_rdt->mem_bw_schema);
    PutStrings(r, "schemata", e.intel_rdt->schemata);
    if (e.intel_rdt->enable_monitoring) r["enableMonitoring"] = true;
    out["intelRdt"] = std::move(r);
  }
  if (!e.net_devices.empty()) {
    Json nets = Json::array();
    for (const auto& n : e.net_devices) {
      Json j = Json::object();
      j["hostInterfaceName"] = n.host_interface_name;
      j["name"] = n.name;
      nets.push_back(std::move(j));
    }
    out["netDevices"] = std::move(nets);
  }
  return out;
}

// ---- Parsing -------------------------------------------------------------------------------

// Reads one JSON object strictly, remembering where it is for error messages.
class Reader {
 public:
  Reader(const Json& j, std::string path) : j_(j), path_(std::move(path)) {}

  Status CheckObject(std::initializer_list<std::string_view> known) const {
    if (!j_.is_object()) return Error(path_, "must be an object");
    for (const auto& item : j_.items()) {
      bool ok = false;
      for (auto k : known) ok = ok || k == item.key();
      if (!ok) return Error(Child(item.key()), "unknown field");
    }
    return Status::Ok();
  }
  bool Has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  Reader Sub(const char* key) const { return {j_.at(key), Child(key)}; }

  Status String(const char* key, std::string& out, bool required = false) const {
    if (!Has(key)) return required ? Error(Child(key), "required field is missing") : Status::Ok();
    const Json& v = j_.at(key);
    if (!v.is_string()) return Error(Child(key), "must be a string");
    out = v.get<std::string>();
    return Status::Ok();
  }
  Status Strings(const char* key, std::vector<std::string>& out) const {
    if (!Has(key)) return Status::Ok();
    const Json& v = j_.at(key);
    if (!v.is_array()) return Error(Child(key), "must be an array of strings");
    for (const auto& s : v) {
      if (!s.is_string()) return Error(Child(key), "must be an array of strings");
      out.push_back(s.get<std::string>());
    }
    return Status::Ok();
  }
  template <typename T>
  Status Int(const char* key, std::optional<T>& out) const {
    if (!Has(key)) return Status::Ok();
    const Json& v = j_.at(key);
    if (!v.is_number_integer()) return Error(Child(key), "must be an integer");
    if (v.is_number_unsigned()) {
      auto u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
        return Error(Child(key), "is out of range");
      }
      out = static_cast<T>(u);
      return Status::Ok();
    }
    auto s = v.get<int64_t>();
    if (s < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        (std::numeric_limits<T>::max() < std::numeric_limits<int64_t>::max() &&
         s > static_cast<int64_t>(std::numeric_limits<T>::max()))) {
      return Error(Child(key), "is out of range");
    }
    out = static_cast<T>(s);
    return Status::Ok();
  }
  Status Annotations(std::map<std::string, std::string>& out) const {
    if (!Has("annotations")) return Status::Ok();
    const Json& v = j_.at("annotations");
    if (!v.is_object()) return Error(Child("annotations"), "must be an object of strings");
    for (const auto& item : v.items()) {
      if (!item.value().is_string()) {
        return Error(Child("annotations") + "." + item.key(), "must be a string");
      }
      out[item.key()] = item.value().get<std::string>();
    }
    return Status::Ok();
  }
  // Calls fn(Reader) for each element of the array `key`.
  template <typename Fn>
  Status Each(const char* key, Fn&& fn) const {
    if (!Has(key)) return Status::Ok();
    const Json& v = j_.at(key);
    if (!v.is_array()) return Error(Child(key), "must be an array");
    for (size_t i = 0; i < v.size(); ++i) {
      RETURN_IF_ERROR(fn(Reader(v[i], Child(key) + "[" + std::to_string(i) + "]")));
    }
    return Status::Ok();
  }
  const Json& json() const { return j_; }

 private:
  std::string Child(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  static Status Error(const std::string& path, std::string_view what) {
    return InvalidArgument("CDI spec field " + (path.empty() ? std::string("<root>") : path) +
                           ": " + std::string(what));
  }

  const Json& j_;
  std::string path_;
};

Status ParseEdits(const Reader& r, ContainerEdits& e) {
  RETURN_IF_ERROR(r.CheckObject(
      {"env", "deviceNodes", "hooks", "mounts", "additionalGids", "intelRdt", "netDevices"}));
  RETURN_IF_ERROR(r.Strings("env", e.env));
  auto parse_device_nodes = [&](const Reader& n) -> Status {
    RETURN_IF_ERROR(n.CheckObject(
        {"path", "hostPath", "type", "major", "minor", "fileMode", "permissions", "uid", "gid"}));
    DeviceNode d;
    RETURN_IF_ERROR(n.String("path", d.path, /*required=*/true));
    RETURN_IF_ERROR(n.String("hostPath", d.host_path));
    RETURN_IF_ERROR(n.String("type", d.type));
    RETURN_IF_ERROR(n.Int("major", d.major));
    RETURN_IF_ERROR(n.Int("minor", d.minor));
    RETURN_IF_ERROR(n.Int("fileMode", d.file_mode));
    RETURN_IF_ERROR(n.String("permissions", d.permissions));
    RETURN_IF_ERROR(n.Int("uid", d.uid));
    RETURN_IF_ERROR(n.Int("gid", d.gid));
    e.device_nodes.push_back(std::move(d));
    return Status::Ok();
  };
  RETURN_IF_ERROR(r.Each("deviceNodes", parse_device_nodes));
  auto parse_hooks = [&](const Reader& n) -> Status {
    RETURN_IF_ERROR(n.CheckObject({"hookName", "path", "args", "env", "timeout"}));
    Hook h;
    RETURN_IF_ERROR(n.String("hookName", h.hook_name, /*required=*/true));
    RETURN_IF_ERROR(n.String("path", h.path, /*required=*/true));
    RETURN_IF_ERROR(n.Strings("args", h.args));
    RETURN_IF_ERROR(n.Strings("env", h.env));
    RETURN_IF_ERROR(n.Int("timeout", h.timeout));
    e.hooks.push_back(std::move(h));
    return Status::Ok();
  };
  RETURN_IF_ERROR(r.Each("hooks", parse_hooks));
  auto parse_mounts = [&](const Reader& n) -> Status {
    RETURN_IF_ERROR(n.CheckObject({"hostPath", "containerPath", "options", "type"}));
    Mount m;
    RETURN_IF_ERROR(n.String("hostPath", m.host_path, /*required=*/true));
    RETURN_IF_ERROR(n.String("containerPath", m.container_path, /*required=*/true));
    RETURN_IF_ERROR(n.Strings("options", m.options));
    RETURN_IF_ERROR(n.String("type", m.type));
    e.mounts.push_back(std::move(m));
    return Status::Ok();
  };
  RETURN_IF_ERROR(r.Each("mounts", parse_mounts));
  auto parse_additional_gids = [&](const Reader& n) -> Status {
    const Json& v = n.json();
    if (!v.is_number_unsigned() || v.get<uint64_t>() > std::numeric_limits<uint32_t>::max()) {
      return InvalidArgument("CDI spec field additionalGids: entries must be integers 0..2^32-1");
    }
    e.additional_gids.push_back(static_cast<uint32_t>(v.get<uint64_t>()));
    return Status::Ok();
  };
  RETURN_IF_ERROR(r.Each("additionalGids", parse_additional_gids));
  if (r.Has("intelRdt")) {
    Reader n = r.Sub("intelRdt");
    RETURN_IF_ERROR(
        n.CheckObject({"closID", "l3CacheSchema", "memBwSchema", "schemata", "enableMonitoring"}));
    IntelRdt rdt;
    RETURN_IF_ERROR(n.String("closID", rdt.clos_id));
    RETURN_IF_ERROR(n.String("l3CacheSchema", rdt.l3_cache_schema));
    RETURN_IF_ERROR(n.String("memBwSchema", rdt.mem_bw_schema));
    RETURN_IF_ERROR(n.Strings("schemata", rdt.schemata));
    if (n.Has("enableMonitoring")) {
      const Json& v = n.json().at("enableMonitoring");
      if (!v.is_boolean()) {
        return InvalidArgument("CDI spec field intelRdt.enableMonitoring: must be a boolean");
      }
      rdt.enable_monitoring = v.get<bool>();
    }
    e.intel_rdt = std::move(rdt);
  }
  auto parse_net_devices = [&](const Reader& n) -> Status {
    RETURN_IF_ERROR(n.CheckObject({"hostInterfaceName", "name"}));
    NetDevice d;
    RETURN_IF_ERROR(n.String("hostInterfaceName", d.host_interface_name, /*required=*/true));
    RETURN_IF_ERROR(n.String("name", d.name, /*required=*/true));
    e.net_devices.push_back(std::move(d));
    return Status::Ok();
  };
  RETURN_IF_ERROR(r.Each("netDevices", parse_net_devices));
  return Status::Ok();
}

Expected<Spec> ParseSpec(const Json& j) {
  Reader r(j, "");
  RETURN_IF_ERROR(
      r.CheckObject({"cdiVersion", "kind", "annotations", "devices", "containerEdits"}));
  Spec spec;
  RETURN_IF_ERROR(r.String("cdiVersion", spec.cdi_version, /*required=*/true));
  RETURN_IF_ERROR(r.String("kind", spec.kind, /*required=*/true));
  RETURN_IF_ERROR(r.Annotations(spec.annotations));
  if (!r.Has("devices"))
    return InvalidArgument("CDI spec field devices: required field is missing");
  auto parse_devices = [&](const Reader& d) -> Status {
    RETURN_IF_ERROR(d.CheckObject({"name", "annotations", "containerEdits"}));
    Device dev;
    RETURN_IF_ERROR(d.String("name", dev.name, /*required=*/true));
    RETURN_IF_ERROR(d.Annotations(dev.annotations));
    if (d.Has("containerEdits"))
      RETURN_IF_ERROR(ParseEdits(d.Sub("containerEdits"), dev.container_edits));
    spec.devices.push_back(std::move(dev));
    return Status::Ok();
  };
  RETURN_IF_ERROR(r.Each("devices", parse_devices));
  if (r.Has("containerEdits")) {
    RETURN_IF_ERROR(ParseEdits(r.Sub("containerEdits"), spec.container_edits));
  }
  RETURN_IF_ERROR(Validate(spec));
  return spec;
}

}  // namespace

Expected<std::string> ToJson(const Spec& spec) {
  RETURN_IF_ERROR(Validate(spec));
  try {
    Json out = Json::object();
    out["cdiVersion"] = spec.cdi_version.empty() ? MinimumVersion(spec) : spec.cdi_version;
    out["kind"] = spec.kind;
    PutAnnotations(out, spec.annotations);
    Json devices = Json::array();
    for (const auto& d : spec.devices) {
      Json dev = Json::object();
      dev["name"] = d.name;
      PutAnnotations(dev, d.annotations);
      dev["containerEdits"] = RenderEdits(d.container_edits);
      devices.push_back(std::move(dev));
    }
    out["devices"] = std::move(devices);
    if (!spec.container_edits.empty()) out["containerEdits"] = RenderEdits(spec.container_edits);
    // Invalid UTF-8 in a string throws; replace it rather than fail, the runtime would reject
    // such a spec anyway and Validate already checked all names.
    return out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  } catch (const std::exception& e) {
    return Internal(std::string("rendering CDI spec of kind ") + spec.kind + ": " + e.what());
  }
}

Expected<Spec> ParseJson(std::string_view json) {
  try {
    Json j = Json::parse(json.begin(), json.end());
    return ParseSpec(j);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("CDI spec is not valid JSON: ") + e.what());
  }
}

}  // namespace accel_dra::cdi
