#pragma once
// Clients that talk to a DRA kubelet plugin the way kubelet does: the registration socket
// (pluginregistration.Registration), the DRA socket (DRAPlugin v1 / v1beta1 and the v1 / v1alpha1
// resource-health stream), and the standard grpc.health.v1 service.
//
// Used by the plugin's own liveness check, by tests and by the accel-dra-kubelet-sim tool.
// Every call takes an explicit deadline and returns errors as values; nothing throws. Each client
// owns a private gRPC channel that never shares connections with other channels, so a new client
// really dials the socket (a deleted socket file is noticed).

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "accel_dra/common/status.h"
#include "accel_dra/model/claim.h"
#include "accel_dra/model/health.h"

namespace grpc {
class Channel;
}

namespace accel_dra::kubelet {

// Which DRAPlugin wire version to speak.
enum class DraApiVersion { kV1, kV1beta1 };
std::string_view DraApiVersionName(DraApiVersion v);  // "v1" / "v1beta1"

// Which dra-health (DRAResourceHealth) wire version to speak; kubelet 1.37 prefers v1.
enum class HealthApiVersion { kV1, kV1alpha1 };
std::string_view HealthApiVersionName(HealthApiVersion v);  // "v1" / "v1alpha1"

// Kubelet's per-call timeouts (dra-contract §1.3, §2.2).
inline constexpr std::chrono::milliseconds kKubeletGetInfoTimeout{1000};
inline constexpr std::chrono::milliseconds kKubeletNotifyTimeout{5000};
inline constexpr std::chrono::milliseconds kKubeletDraCallTimeout{45000};

// pluginregistration.PluginInfo, version-free.
struct PluginInfo {
  std::string type;
  std::string name;
  std::string endpoint;
  std::vector<std::string> supported_versions;
};

// Maps a grpc status code number to our Code (kOk for 0).
Code CodeFromGrpc(int grpc_code);

// Creates an insecure channel to `target` (e.g. "unix:/path" or "127.0.0.1:port") that uses a
// private subchannel pool (no connection reuse across channels).
std::shared_ptr<grpc::Channel> MakePrivateChannel(const std::string& target);

class RegistrationClient {
 public:
  // `socket_path`: filesystem path of the registration socket.
  explicit RegistrationClient(const std::string& socket_path);
  Expected<PluginInfo> GetInfo(std::chrono::milliseconds timeout = kKubeletGetInfoTimeout);
  Status NotifyRegistrationStatus(bool registered, const std::string& error,
                                  std::chrono::milliseconds timeout = kKubeletNotifyTimeout);

 private:
  std::shared_ptr<grpc::Channel> channel_;
};

class DraClient {
 public:
  // `socket_path`: filesystem path of the DRA socket (PluginInfo.endpoint).
  DraClient(const std::string& socket_path, DraApiVersion api);

  // A gRPC failure becomes the returned Status; per-claim errors are in the results. The map is
  // exactly what the plugin answered (kubelet-style completeness checks are the caller's job).
  Expected<std::map<std::string, model::PrepareResult>> NodePrepareResources(
      const std::vector<model::ClaimRef>& claims,
      std::chrono::milliseconds timeout = kKubeletDraCallTimeout);
  Expected<std::map<std::string, std::string>> NodeUnprepareResources(
      const std::vector<model::ClaimRef>& claims,
      std::chrono::milliseconds timeout = kKubeletDraCallTimeout);

  // Opens the NodeWatchResources stream of `api` and calls `on_message` for every message until
  // it returns false, the stream ends or `timeout` expires. Returns OK when `on_message` stopped
  // the stream, otherwise the stream's final status.
  Status WatchResources(
      const std::function<bool(const std::vector<model::DeviceHealth>&)>& on_message,
      std::chrono::milliseconds timeout, HealthApiVersion api = HealthApiVersion::kV1alpha1);

 private:
  std::shared_ptr<grpc::Channel> channel_;
  DraApiVersion api_;
};

// grpc.health.v1 serving status.
enum class ServingStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };
std::string_view ServingStatusName(ServingStatus s);

// Calls grpc.health.v1.Health/Check on `target` (gRPC target string, e.g. "127.0.0.1:8080").
Expected<ServingStatus> CheckGrpcHealth(const std::string& target, const std::string& service,
                                        std::chrono::milliseconds timeout);

}  // namespace accel_dra::kubelet
