#pragma once
// pluginregistration.Registration: tells kubelet who we are (GetInfo) and receives the
// registration outcome (NotifyRegistrationStatus), which is forwarded to a callback that must not
// block (the server re-creates its socket on failure from another thread).

#include <grpcpp/impl/service_type.h>

#include <functional>
#include <memory>
#include <string>

#include "accel_dra/kubelet/kubelet_client.h"

namespace accel_dra::kubelet {

inline constexpr char kDraPluginType[] = "DRAPlugin";
inline constexpr char kDraV1Service[] = "v1.DRAPlugin";
inline constexpr char kDraV1beta1Service[] = "v1beta1.DRAPlugin";
inline constexpr char kDraHealthV1Service[] = "v1.DRAResourceHealth";
inline constexpr char kDraHealthV1alpha1Service[] = "v1alpha1.DRAResourceHealth";

using RegistrationStatusCallback = std::function<void(bool registered, const std::string& error)>;

std::unique_ptr<grpc::Service> MakeRegistrationService(PluginInfo info,
                                                       RegistrationStatusCallback on_status);

}  // namespace accel_dra::kubelet
