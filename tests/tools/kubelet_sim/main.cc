// accel-dra-kubelet-sim: does what kubelet does with a DRA kubelet plugin, one step per command,
// and prints the answer as JSON on stdout (diagnostics on stderr).
//
//   register     GetInfo + validation like kubelet + NotifyRegistrationStatus
//   prepare      NodePrepareResources   (v1 | v1beta1 | auto = kubelet's choice from GetInfo)
//   unprepare    NodeUnprepareResources
//   watch-health NodeWatchResources (--api v1 | v1alpha1), one JSON line per message
//   healthcheck  grpc.health.v1 Check (what a DaemonSet `grpc:` liveness probe does)
//
// Exit codes: 0 success; 2 the call failed (connection, gRPC error); 3 the plugin answered but
// kubelet would treat the answer as a failure (per-claim error, missing/unknown claim UID, invalid
// PluginInfo, NOT_SERVING); CLI11's codes for usage errors.

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "accel_dra/kubelet/kubelet_client.h"
#include "accel_dra/kubelet/plugin_server.h"

namespace {

using accel_dra::Expected;
using accel_dra::Status;
using accel_dra::kubelet::DraApiVersion;
using accel_dra::kubelet::PluginInfo;
using accel_dra::model::ClaimRef;
using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitCallFailed = 2;
constexpr int kExitRejected = 3;

// Where the plugin is: either a socket given directly, or derived like the plugin derives it.
struct Target {
  std::string socket;  // direct socket path (registration socket for `register`, else DRA socket)
  std::string registrar_dir = accel_dra::kubelet::kDefaultRegistrarDir;
  std::string driver;
  std::string pod_uid;
};

void AddTargetOptions(CLI::App* cmd, Target& t, const std::string& socket_help) {
  cmd->add_option("--socket", t.socket, socket_help);
  cmd->add_option("--registrar-dir", t.registrar_dir,
                  "kubelet plugin registry directory (with --driver)")
      ->capture_default_str();
  cmd->add_option("--driver", t.driver, "DRA driver name; finds <registrar-dir>/<driver>-reg.sock");
  cmd->add_option("--pod-uid", t.pod_uid, "plugin pod UID (rolling-update socket names)");
}

std::string RegistrationSocket(const Target& t) {
  if (!t.socket.empty()) return t.socket;
  accel_dra::kubelet::PluginServerOptions o;
  o.registrar_dir = t.registrar_dir;
  o.driver_name = t.driver;
  o.pod_uid = t.pod_uid;
  return accel_dra::kubelet::ComputeSocketPaths(o).registration_socket;
}

int Fail(const Status& st) {
  json out = {{"error", st.message()}, {"code", std::string(accel_dra::CodeName(st.code()))}};
  std::cout << out.dump(2) << std::endl;
  std::cerr << "accel-dra-kubelet-sim: " << st.ToString() << std::endl;
  return kExitCallFailed;
}

json InfoJson(const PluginInfo& info) {
  return {{"type", info.type},
          {"name", info.name},
          {"endpoint", info.endpoint},
          {"supported_versions", info.supported_versions}};
}

// Kubelet's validation of a DRA PluginInfo; returns the error message or "" and the chosen API.
std::string ValidateLikeKubelet(const PluginInfo& info, const std::string& expected_driver,
                                std::optional<DraApiVersion>* api) {
  if (info.type != "DRAPlugin") return "unsupported plugin type '" + info.type + "'";
  if (!expected_driver.empty() && info.name != expected_driver) {
    return "plugin reports driver '" + info.name + "', expected '" + expected_driver + "'";
  }
  if (info.supported_versions.empty()) return "empty list of supported gRPC services";
  for (const std::string& v : info.supported_versions) {  // plugin's order, like kubelet
    if (v == "v1.DRAPlugin") {
      *api = DraApiVersion::kV1;
      return "";
    }
    if (v == "v1beta1.DRAPlugin") {
      *api = DraApiVersion::kV1beta1;
      return "";
    }
  }
  return "none of the services supported by the plugin are supported by the kubelet "
         "(v1.DRAPlugin, v1beta1.DRAPlugin)";
}

int RunRegister(const Target& t, const std::string& reject, bool notify, int timeout_ms) {
  if (t.socket.empty() && t.driver.empty()) {
    std::cerr << "register: give --socket or --driver" << std::endl;
    return kExitCallFailed;
  }
  const std::string sock = RegistrationSocket(t);
  accel_dra::kubelet::RegistrationClient client(sock);
  auto info = client.GetInfo(std::chrono::milliseconds(timeout_ms));
  if (!info.ok()) return Fail(info.status());

  std::optional<DraApiVersion> api;
  std::string error = ValidateLikeKubelet(*info, t.driver, &api);
  if (!reject.empty()) error = reject;
  json out = InfoJson(*info);
  out["registration_socket"] = sock;
  out["selected_api"] = api ? json(std::string(DraApiVersionName(*api))) : json(nullptr);
  if (info->endpoint.empty()) out["effective_endpoint"] = sock;  // kubelet's fallback
  if (notify) {
    Status st = client.NotifyRegistrationStatus(error.empty(), error);
    if (!st.ok()) return Fail(st);
  }
  out["registered"] = error.empty();
  if (!error.empty()) out["error"] = error;
  std::cout << out.dump(2) << std::endl;
  return error.empty() ? kExitOk : kExitRejected;
}

Expected<std::vector<ClaimRef>> ParseClaims(const std::vector<std::string>& specs) {
  std::vector<ClaimRef> claims;
  for (const std::string& s : specs) {
    auto a = s.find('/');
    auto b = a == std::string::npos ? a : s.find('/', a + 1);
    if (b == std::string::npos || s.find('/', b + 1) != std::string::npos || a == 0 || b == a + 1 ||
        b + 1 == s.size()) {
      return accel_dra::InvalidArgument("--claim '" + s + "': expected <namespace>/<name>/<uid>");
    }
    claims.push_back(ClaimRef{s.substr(0, a), s.substr(a + 1, b - a - 1), s.substr(b + 1)});
  }
  return claims;
}

// Resolves the DRA socket and API version; `api_flag` is "v1", "v1beta1" or "auto".
Expected<std::pair<std::string, DraApiVersion>> ResolveDra(const Target& t,
                                                           const std::string& api_flag) {
  std::optional<DraApiVersion> api;
  if (api_flag == "v1") api = DraApiVersion::kV1;
  if (api_flag == "v1beta1") api = DraApiVersion::kV1beta1;
  if (!t.socket.empty()) return std::make_pair(t.socket, api.value_or(DraApiVersion::kV1));
  if (t.driver.empty()) return accel_dra::InvalidArgument("give --socket or --driver");
  const std::string reg = RegistrationSocket(t);
  auto info = accel_dra::kubelet::RegistrationClient(reg).GetInfo();
  if (!info.ok()) return info.status();
  std::optional<DraApiVersion> chosen;
  std::string error = ValidateLikeKubelet(*info, t.driver, &chosen);
  if (!error.empty()) return accel_dra::FailedPrecondition("plugin at " + reg + ": " + error);
  return std::make_pair(info->endpoint.empty() ? reg : info->endpoint, api.value_or(*chosen));
}

json DevicesJson(const accel_dra::model::PrepareResult& r) {
  json devices = json::array();
  for (const auto& d : r.devices) {
    json dev = {{"request_names", d.request_names},
                {"pool_name", d.pool},
                {"device_name", d.device},
                {"cdi_device_ids", d.cdi_device_ids}};
    if (d.share_id) dev["share_id"] = *d.share_id;
    devices.push_back(std::move(dev));
  }
  return devices;
}

// Kubelet's checks of a response map: unknown UIDs, per-claim errors, skipped claims.
template <typename Map, typename ErrorOf>
json KubeletErrors(const std::vector<ClaimRef>& claims, const Map& results, ErrorOf error_of,
                   const std::string& method) {
  json errors = json::array();
  std::set<std::string> requested;
  for (const ClaimRef& c : claims) requested.insert(c.uid);
  for (const auto& [uid, r] : results) {
    if (!requested.count(uid))
      errors.push_back(method + " returned result for unknown claim " + uid);
  }
  size_t skipped = 0;
  for (const ClaimRef& c : claims) {
    auto it = results.find(c.uid);
    if (it == results.end()) {
      ++skipped;
    } else if (const std::string& e = error_of(it->second); !e.empty()) {
      errors.push_back(method + " failed for ResourceClaim " + c.name + ": " + e);
    }
  }
  if (skipped > 0) {
    errors.push_back(method + " skipped " + std::to_string(skipped) + " ResourceClaims");
  }
  return errors;
}

int RunDraCall(bool prepare, const Target& t, const std::vector<std::string>& claim_specs,
               const std::string& api_flag, int timeout_ms) {
  auto claims = ParseClaims(claim_specs);
  if (!claims.ok()) return Fail(claims.status());
  auto dra = ResolveDra(t, api_flag);
  if (!dra.ok()) return Fail(dra.status());
  const auto& [socket, api] = *dra;
  accel_dra::kubelet::DraClient client(socket, api);
  const auto timeout = std::chrono::milliseconds(timeout_ms);

  json out = {{"api", std::string(DraApiVersionName(api))}, {"endpoint", socket}};
  json claims_json = json::object();
  json errors;
  if (prepare) {
    auto r = client.NodePrepareResources(*claims, timeout);
    if (!r.ok()) return Fail(r.status());
    for (const auto& [uid, res] : *r) {
      claims_json[uid] = {{"devices", DevicesJson(res)}, {"error", res.error}};
    }
    errors = KubeletErrors(
        *claims, *r, [](const accel_dra::model::PrepareResult& x) { return x.error; },
        "NodePrepareResources");
  } else {
    auto r = client.NodeUnprepareResources(*claims, timeout);
    if (!r.ok()) return Fail(r.status());
    for (const auto& [uid, err] : *r) claims_json[uid] = {{"error", err}};
    errors = KubeletErrors(
        *claims, *r, [](const std::string& x) { return x; }, "NodeUnprepareResources");
  }
  out["claims"] = std::move(claims_json);
  out["kubelet_errors"] = errors;
  std::cout << out.dump(2) << std::endl;
  for (const auto& e : errors) std::cerr << "kubelet would fail: " << e.get<std::string>() << "\n";
  return errors.empty() ? kExitOk : kExitRejected;
}

std::string HealthName(accel_dra::model::DeviceHealthStatus s) {
  switch (s) {
    case accel_dra::model::DeviceHealthStatus::kHealthy:
      return "Healthy";
    case accel_dra::model::DeviceHealthStatus::kUnhealthy:
      return "Unhealthy";
    case accel_dra::model::DeviceHealthStatus::kUnknown:
      break;
  }
  return "Unknown";
}

int RunWatchHealth(const Target& t, const std::string& health_api, int count, int timeout_ms) {
  auto dra = ResolveDra(t, "auto");
  if (!dra.ok()) return Fail(dra.status());
  accel_dra::kubelet::DraClient client(dra->first, DraApiVersion::kV1);
  const auto api = health_api == "v1alpha1" ? accel_dra::kubelet::HealthApiVersion::kV1alpha1
                                            : accel_dra::kubelet::HealthApiVersion::kV1;
  int seen = 0;
  Status st = client.WatchResources(
      [&](const std::vector<accel_dra::model::DeviceHealth>& devices) {
        json msg = {{"devices", json::array()}};
        for (const auto& d : devices) {
          msg["devices"].push_back(
              {{"pool_name", d.pool},
               {"device_name", d.device},
               {"health", HealthName(d.health)},
               {"last_updated_time", d.last_updated_unix},
               {"health_check_timeout_seconds", d.health_check_timeout_seconds},
               {"message", d.message}});
        }
        std::cout << msg.dump() << std::endl;  // one JSON line per message
        ++seen;
        return count <= 0 || seen < count;
      },
      std::chrono::milliseconds(timeout_ms), api);
  if (!st.ok() && !(count <= 0 && st.code() == accel_dra::Code::kDeadlineExceeded)) {
    std::cerr << "accel-dra-kubelet-sim: " << st.ToString() << std::endl;
    return kExitCallFailed;
  }
  return kExitOk;
}

int RunHealthcheck(const std::string& address, const std::string& service, int timeout_ms) {
  auto s =
      accel_dra::kubelet::CheckGrpcHealth(address, service, std::chrono::milliseconds(timeout_ms));
  if (!s.ok()) return Fail(s.status());
  json out = {{"status", std::string(accel_dra::kubelet::ServingStatusName(*s))}};
  std::cout << out.dump(2) << std::endl;
  return *s == accel_dra::kubelet::ServingStatus::kServing ? kExitOk : kExitRejected;
}

}  // namespace

#if defined(__SANITIZE_THREAD__)
// gRPC and its dependencies are not TSan-instrumented; ignore interceptor calls made from them
// (same setting as the plugin_server tests).
extern "C" const char* __tsan_default_options() { return "ignore_noninstrumented_modules=1"; }
#endif

int main(int argc, char** argv) {
  CLI::App app{"accel-dra-kubelet-sim: talk to a DRA kubelet plugin the way kubelet does"};
  app.require_subcommand(1);

  Target reg_target;
  std::string reject;
  bool no_notify = false;
  int reg_timeout_ms = 1000;
  auto* reg =
      app.add_subcommand("register", "GetInfo + NotifyRegistrationStatus, print PluginInfo");
  AddTargetOptions(reg, reg_target, "registration socket path (instead of --driver)");
  reg->add_option("--reject", reject, "answer NotifyRegistrationStatus(false, MESSAGE)");
  reg->add_flag("--no-notify", no_notify, "only GetInfo, do not call NotifyRegistrationStatus");
  reg->add_option("--timeout-ms", reg_timeout_ms, "GetInfo deadline")->capture_default_str();

  Target dra_target;
  std::vector<std::string> claims;
  std::string api = "auto";
  int dra_timeout_ms = 45000;
  auto add_dra_cmd = [&](const std::string& name, const std::string& help) {
    auto* cmd = app.add_subcommand(name, help);
    AddTargetOptions(cmd, dra_target, "DRA socket path (PluginInfo.endpoint)");
    cmd->add_option("--claim", claims, "<namespace>/<name>/<uid>, repeatable");
    cmd->add_option("--api", api, "v1, v1beta1 or auto (kubelet's choice; v1 with --socket)")
        ->check(CLI::IsMember({"v1", "v1beta1", "auto"}))
        ->capture_default_str();
    cmd->add_option("--timeout-ms", dra_timeout_ms, "call deadline")->capture_default_str();
    return cmd;
  };
  auto* prep = add_dra_cmd("prepare", "NodePrepareResources, print the response");
  auto* unprep = add_dra_cmd("unprepare", "NodeUnprepareResources, print the response");

  int count = 1;
  int watch_timeout_ms = 30000;
  std::string health_api = "v1";
  auto* watch = app.add_subcommand("watch-health", "NodeWatchResources, one JSON line a message");
  AddTargetOptions(watch, dra_target, "DRA socket path (PluginInfo.endpoint)");
  watch->add_option("--count", count, "stop after N messages (0 = until the timeout)")
      ->capture_default_str();
  watch->add_option("--timeout-ms", watch_timeout_ms, "stream deadline")->capture_default_str();
  watch
      ->add_option("--api", health_api,
                   "dra-health version: v1 (kubelet 1.37's choice) or v1alpha1")
      ->check(CLI::IsMember({"v1", "v1alpha1"}))
      ->capture_default_str();

  std::string address;
  std::string service;
  int hc_timeout_ms = 2000;
  auto* hc = app.add_subcommand("healthcheck", "grpc.health.v1 Check, like a liveness probe");
  hc->add_option("--address", address, "host:port of the plugin's health endpoint")->required();
  hc->add_option("--service", service, "service name in the request");
  hc->add_option("--timeout-ms", hc_timeout_ms, "call deadline")->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  if (*reg) return RunRegister(reg_target, reject, !no_notify, reg_timeout_ms);
  if (*prep) return RunDraCall(true, dra_target, claims, api, dra_timeout_ms);
  if (*unprep) return RunDraCall(false, dra_target, claims, api, dra_timeout_ms);
  if (*watch) return RunWatchHealth(dra_target, health_api, count, watch_timeout_ms);
  if (*hc) return RunHealthcheck(address, service, hc_timeout_ms);
  return 1;
}
