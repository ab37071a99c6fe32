#include "accel_dra/kubelet/plugin_server.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "accel_dra/common/log.h"
#include "accel_dra/kubelet/kubelet_client.h"
#include "dra_service.h"
#include "health_services.h"
#include "registration_service.h"
#include "socket_util.h"

namespace accel_dra::kubelet {

namespace {

// 16 hex digits of the FNV-1a 64-bit hash of `s`: a short stand-in for a pod UID in socket names.
std::string ShortHash(std::string_view s) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<size_t>(i)] = kHex[h & 0xf];
  return out;
}

// `dir`/`prefix`<pod UID>`suffix`, or with ShortSocketId(pod UID) instead of the UID when that
// path would not fit into sun_path.
std::string PodSocketPath(const std::filesystem::path& dir, const std::string& prefix,
                          const std::string& pod_uid, const std::string& suffix) {
  std::string full = (dir / (prefix + pod_uid + suffix)).string();
  if (full.size() <= kMaxUnixSocketPathLength) return full;
  return (dir / (prefix + ShortSocketId(pod_uid) + suffix)).string();
}

}  // namespace

std::string ShortSocketId(std::string_view pod_uid) { return ShortHash(pod_uid); }

PluginSocketPaths ComputeSocketPaths(const PluginServerOptions& o) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto abs = [&ec](const std::string& p) {
    fs::path a = fs::absolute(fs::path(p), ec);
    return (ec ? fs::path(p) : a).lexically_normal();
  };
  PluginSocketPaths p;
  const fs::path data_dir = abs(o.plugins_dir) / o.driver_name;
  p.plugin_data_dir = data_dir.string();
  if (o.pod_uid.empty()) {
    p.dra_socket = (data_dir / "dra.sock").string();
    p.registration_socket = (abs(o.registrar_dir) / (o.driver_name + "-reg.sock")).string();
  } else {
    p.dra_socket = PodSocketPath(data_dir, "dra-", o.pod_uid, ".sock");
    p.registration_socket =
        PodSocketPath(abs(o.registrar_dir), o.driver_name + "-", o.pod_uid, "-reg.sock");
  }
  return p;
}

std::string DefaultHealthcheckAddress() {
  const char* pod_ip = std::getenv("POD_IP");
  return pod_ip != nullptr && *pod_ip != '\0' ? std::string(pod_ip) : "127.0.0.1";
}

namespace {

constexpr unsigned kSocketMode = 0600;

std::chrono::system_clock::time_point DeadlineIn(std::chrono::milliseconds d) {
  return std::chrono::system_clock::now() + d;
}

// Builds and starts a gRPC server with `services` listening on unix socket `path` (mode 0600).
Expected<std::unique_ptr<grpc::Server>> ServeUnix(const std::string& path, const std::string& what,
                                                  const std::vector<grpc::Service*>& services) {
  RETURN_IF_ERROR(RemoveStaleSocket(path));
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort("unix:" + path, grpc::InsecureServerCredentials(), &bound);
  for (grpc::Service* s : services) builder.RegisterService(s);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound == 0) {
    if (server) {
      server->Shutdown(DeadlineIn(std::chrono::milliseconds(0)));
      server->Wait();
    }
    return Unavailable("cannot listen on " + what + " socket '" + path +
                       "' (see the gRPC error above); check that the directory is writable and "
                       "that no other plugin instance uses this socket name");
  }
  Status st = SetFileMode(path, kSocketMode);
  if (!st.ok()) {
    server->Shutdown(DeadlineIn(std::chrono::milliseconds(0)));
    server->Wait();
    RemoveSocketQuietly(path);
    return st;
  }
  spdlog::info("serving {} on {}", what, path);
  return server;
}

std::string HostPort(const std::string& address, int port) {
  if (address.find(':') != std::string::npos && address.front() != '[') {
    return "[" + address + "]:" + std::to_string(port);  // IPv6 literal
  }
  return address + ":" + std::to_string(port);
}

}  // namespace

class PluginServer::Impl {
 public:
  Impl(PluginServerOptions o, PluginSocketPaths p) : opts_(std::move(o)), paths_(std::move(p)) {}

  Status Start();
  void Stop();

  int health_port() const { return health_port_.load(); }
  uint64_t reg_generation() const { return reg_generation_.load(); }

 private:
  PluginInfo MakePluginInfo() const;
  Status StartRegistration();  // requires reg_mu_
  void StopRegistration();     // requires reg_mu_
  void OnRegistrationStatus(bool registered, const std::string& error);
  void ReregistrationLoop();
  bool LivenessCheck(std::string* why) const;
  void StopLocked();  // requires lifecycle_mu_; undoes whatever Start() got done

  const PluginServerOptions opts_;
  const PluginSocketPaths paths_;
  std::shared_ptr<StopSignal> stop_signal_ = std::make_shared<StopSignal>();

  std::mutex lifecycle_mu_;  // Start/Stop
  bool started_ = false;
  bool stopped_ = false;

  // DRA socket.
  std::vector<std::unique_ptr<grpc::Service>> dra_services_;
  std::unique_ptr<grpc::Server> dra_server_;

  // Registration socket; re-created from the re-registration thread.
  std::mutex reg_mu_;
  std::unique_ptr<grpc::Service> reg_service_;
  std::unique_ptr<grpc::Server> reg_server_;
  std::atomic<uint64_t> reg_generation_{0};

  // Re-registration after a failed registration.
  std::mutex rereg_mu_;
  std::condition_variable rereg_cv_;
  bool rereg_pending_ = false;
  bool rereg_stop_ = false;
  int rereg_failures_ = 0;
  std::thread rereg_thread_;

  // grpc.health.v1 over TCP.
  std::unique_ptr<grpc::Service> health_service_;
  std::unique_ptr<grpc::Server> health_server_;
  std::atomic<int> health_port_{-1};
};

PluginInfo PluginServer::Impl::MakePluginInfo() const {
  PluginInfo info;
  info.type = kDraPluginType;
  info.name = opts_.driver_name;
  info.endpoint = paths_.dra_socket;
  // Kubelet picks the first DRAPlugin entry it supports, so v1 goes first; for health, kubelet
  // 1.37 picks by its own preference (v1, then v1alpha1) among the advertised ones. The order is
  // the upstream helper's.
  info.supported_versions = {kDraV1Service, kDraV1beta1Service};
  if (opts_.health_source) {
    info.supported_versions.push_back(kDraHealthV1Service);
    info.supported_versions.push_back(kDraHealthV1alpha1Service);
  }
  return info;
}

Status PluginServer::Impl::Start() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  if (started_) return FailedPrecondition("PluginServer::Start called twice");
  started_ = true;

  if (opts_.driver_name.empty()) return InvalidArgument("the DRA driver name must not be empty");
  if (opts_.driver_name.find('/') != std::string::npos) {
    return InvalidArgument("the DRA driver name '" + opts_.driver_name + "' must not contain '/'");
  }
  if (!opts_.preparer) return InvalidArgument("PluginServer needs a ClaimPreparer");
  if (opts_.healthcheck_port > 65535) {
    return InvalidArgument("--healthcheck-port " + std::to_string(opts_.healthcheck_port) +
                           " is not a valid TCP port (use -1 to disable, 0 for any free port)");
  }
  RETURN_IF_ERROR(CheckUnixSocketPath(paths_.dra_socket, "DRA"));
  RETURN_IF_ERROR(CheckUnixSocketPath(paths_.registration_socket, "registration"));
  RETURN_IF_ERROR(EnsureDirectory(paths_.plugin_data_dir));
  RETURN_IF_ERROR(
      EnsureDirectory(std::filesystem::path(paths_.registration_socket).parent_path().string()));

  // 1. DRA socket first: kubelet dials the endpoint as soon as it sees the registration socket.
  dra_services_.push_back(MakeDraService(DraApiVersion::kV1, opts_.preparer));
  dra_services_.push_back(MakeDraService(DraApiVersion::kV1beta1, opts_.preparer));
  if (opts_.health_source) {
    for (auto& s : MakeResourceHealthServices(opts_.health_source, opts_.health_resend_interval,
                                              opts_.health_poll_interval, stop_signal_,
                                              opts_.max_health_streams)) {
      dra_services_.push_back(std::move(s));
    }
  }
  std::vector<grpc::Service*> services;
  for (auto& s : dra_services_) services.push_back(s.get());
  auto dra = ServeUnix(paths_.dra_socket, "DRA", services);
  if (!dra.ok()) return dra.status();
  dra_server_ = std::move(dra).value();

  // 2. Registration socket.
  Status reg_status;
  {
    std::lock_guard<std::mutex> l(reg_mu_);
    reg_status = StartRegistration();
  }
  if (!reg_status.ok()) {
    StopLocked();
    return reg_status;
  }
  rereg_thread_ = std::thread([this] { ReregistrationLoop(); });

  // 3. Liveness endpoint.
  if (opts_.healthcheck_port >= 0) {
    health_service_ = MakeGrpcHealthService(
        [this](std::string* why) { return LivenessCheck(why); }, stop_signal_,
        opts_.max_health_streams, {std::string(kRecoveryHealthService), opts_.recovery_problem});
    grpc::ServerBuilder builder;
    // Fail clearly if the port is taken instead of sharing it with another process.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    int bound = 0;
    const std::string addr = HostPort(opts_.healthcheck_address, opts_.healthcheck_port);
    builder.AddListeningPort(addr, grpc::InsecureServerCredentials(), &bound);
    builder.RegisterService(health_service_.get());
    health_server_ = builder.BuildAndStart();
    if (!health_server_ || bound == 0) {
      if (health_server_) {
        health_server_->Shutdown(DeadlineIn(std::chrono::milliseconds(0)));
        health_server_->Wait();
        health_server_.reset();
      }
      StopLocked();
      return Unavailable("cannot listen for gRPC health checks on " + addr +
                         "; is the port in use? Pick another --healthcheck-port or -1 to disable");
    }
    health_port_.store(bound);
    spdlog::info("serving grpc.health.v1 on {}", HostPort(opts_.healthcheck_address, bound));
  }
  return Status::Ok();
}

Status PluginServer::Impl::StartRegistration() {
  reg_service_ = MakeRegistrationService(
      MakePluginInfo(), [this](bool ok, const std::string& err) { OnRegistrationStatus(ok, err); });
  auto reg = ServeUnix(paths_.registration_socket, "registration", {reg_service_.get()});
  if (!reg.ok()) {
    reg_service_.reset();
    return reg.status();
  }
  reg_server_ = std::move(reg).value();
  reg_generation_.fetch_add(1);
  return Status::Ok();
}

void PluginServer::Impl::StopRegistration() {
  if (reg_server_) {
    reg_server_->Shutdown(DeadlineIn(opts_.shutdown_deadline));
    reg_server_->Wait();
    reg_server_.reset();
    RemoveSocketQuietly(paths_.registration_socket);
  }
  reg_service_.reset();
}

void PluginServer::Impl::OnRegistrationStatus(bool registered, const std::string& /*error*/) {
  std::lock_guard<std::mutex> l(rereg_mu_);
  if (registered) {
    rereg_failures_ = 0;
    return;
  }
  rereg_pending_ = true;  // coalesces repeated failures into one re-creation
  rereg_cv_.notify_all();
}

void PluginServer::Impl::ReregistrationLoop() {
  std::unique_lock<std::mutex> l(rereg_mu_);
  while (true) {
    rereg_cv_.wait(l, [this] { return rereg_stop_ || rereg_pending_; });
    if (rereg_stop_) return;
    auto delay = opts_.reregister_backoff_initial;
    for (int i = 0; i < rereg_failures_ && delay < opts_.reregister_backoff_max; ++i) delay *= 2;
    delay = std::min(delay, opts_.reregister_backoff_max);
    rereg_failures_ = std::min(rereg_failures_ + 1, 30);
    spdlog::info("re-creating registration socket {} in {} ms", paths_.registration_socket,
                 delay.count());
    if (rereg_cv_.wait_for(l, delay, [this] { return rereg_stop_; })) return;
    rereg_pending_ = false;
    l.unlock();
    Status st;
    {
      std::lock_guard<std::mutex> reg(reg_mu_);
      StopRegistration();
      st = StartRegistration();
    }
    l.lock();
    if (!st.ok()) {
      spdlog::error("re-creating the registration socket failed, will retry: {}", st.ToString());
      rereg_pending_ = true;
    }
  }
}

bool PluginServer::Impl::LivenessCheck(std::string* why) const {
  const auto timeout = opts_.healthcheck_call_timeout;
  auto info = RegistrationClient(paths_.registration_socket).GetInfo(timeout);
  if (!info.ok()) {
    *why = "registration socket " + paths_.registration_socket + ": " + info.status().message();
    return false;
  }
  if (info->name != opts_.driver_name || info->endpoint != paths_.dra_socket) {
    *why = "registration socket " + paths_.registration_socket + " answers for driver '" +
           info->name + "' endpoint '" + info->endpoint + "'";
    return false;
  }
  auto prep = DraClient(paths_.dra_socket, DraApiVersion::kV1).NodePrepareResources({}, timeout);
  if (!prep.ok()) {
    *why = "DRA socket " + paths_.dra_socket + ": " + prep.status().message();
    return false;
  }
  return true;
}

void PluginServer::Impl::Stop() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  if (!started_) return;
  StopLocked();
}

void PluginServer::Impl::StopLocked() {
  if (stopped_) return;
  stopped_ = true;
  const bool serving = dra_server_ != nullptr;
  if (serving) spdlog::info("stopping DRA plugin servers for {}", opts_.driver_name);
  stop_signal_->Stop();  // ends streams promptly

  {
    std::lock_guard<std::mutex> l(rereg_mu_);
    rereg_stop_ = true;
  }
  rereg_cv_.notify_all();
  if (rereg_thread_.joinable()) rereg_thread_.join();

  // Registration first: removing its socket makes kubelet deregister the plugin.
  {
    std::lock_guard<std::mutex> l(reg_mu_);
    StopRegistration();
  }
  if (health_server_) {
    health_server_->Shutdown(DeadlineIn(opts_.shutdown_deadline));
    health_server_->Wait();
    health_server_.reset();
  }
  if (dra_server_) {
    dra_server_->Shutdown(DeadlineIn(opts_.shutdown_deadline));
    dra_server_->Wait();
  }
  if (dra_server_) RemoveSocketQuietly(paths_.dra_socket);
  dra_server_.reset();
  if (serving) spdlog::info("DRA plugin servers for {} stopped", opts_.driver_name);
}

PluginServer::PluginServer(PluginServerOptions options)
    : paths_(ComputeSocketPaths(options)),
      impl_(std::make_unique<Impl>(std::move(options), paths_)) {}

PluginServer::~PluginServer() { Stop(); }

Status PluginServer::Start() { return impl_->Start(); }
void PluginServer::Stop() { impl_->Stop(); }
int PluginServer::healthcheck_port() const { return impl_->health_port(); }
uint64_t PluginServer::registration_socket_generation() const { return impl_->reg_generation(); }

}  // namespace accel_dra::kubelet
