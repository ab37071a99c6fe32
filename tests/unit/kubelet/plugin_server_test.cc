// PluginServer, exercised the way kubelet uses it: over real unix sockets with real gRPC clients.
// The ClaimPreparer is a fake (it is the collaborator of the unit under test).

#include "accel_dra/kubelet/plugin_server.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "accel_dra/common/log.h"
#include "accel_dra/kubelet/kubelet_client.h"
#include "fakes.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace accel_dra::kubelet {
namespace {

namespace fs = std::filesystem;
using fakes::FakeHealthSource;
using fakes::FakePreparer;
using std::chrono::milliseconds;
using std::chrono::seconds;

// --- helpers -----------------------------------------------------------------------------------

struct FileId {
  ino_t ino = 0;
  int64_t ctime_ns = 0;
  mode_t mode = 0;
  bool operator==(const FileId&) const = default;
};

std::optional<FileId> Stat(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return std::nullopt;
  return FileId{st.st_ino,
                static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec,
                st.st_mode};
}

// Leaves a unix socket file behind at `path`, like a crashed plugin would.
void MakeStaleSocket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
      << std::strerror(errno);
  ::close(fd);
  ASSERT_TRUE(Stat(path).has_value());
}

template <typename Pred>
bool WaitFor(Pred pred, milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return pred();
}

model::ClaimRef Claim(const std::string& uid) {
  return model::ClaimRef{"ns1", "claim-" + uid, uid};
}

class PluginServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    static std::once_flag once;
    // Verbosity 6 exercises the request/response logging paths.
    std::call_once(once, [] { InitLogging(6); });
  }

  void SetUp() override {
    char tmpl[] = "/tmp/dra-ps-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    preparer_ = std::make_shared<FakePreparer>();
    opts_.registrar_dir = dir_ + "/registry";
    opts_.plugins_dir = dir_ + "/plugins";
    opts_.preparer = preparer_;
    opts_.reregister_backoff_initial = milliseconds(50);
    opts_.reregister_backoff_max = milliseconds(400);
    opts_.health_poll_interval = milliseconds(20);
    opts_.health_resend_interval = milliseconds(700);
    opts_.shutdown_deadline = milliseconds(2000);
  }

  void TearDown() override {
    server_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void StartServer() {
    server_ = std::make_unique<PluginServer>(opts_);
    Status st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  std::string dra_sock() const { return dir_ + "/plugins/accel-dra.dev/dra.sock"; }
  std::string reg_sock() const { return dir_ + "/registry/accel-dra.dev-reg.sock"; }

  // Kubelet's registration handshake; returns the endpoint.
  std::string Register() {
    RegistrationClient reg(reg_sock());
    auto info = reg.GetInfo();
    EXPECT_TRUE(info.ok()) << info.status().ToString();
    if (!info.ok()) return "";
    EXPECT_TRUE(reg.NotifyRegistrationStatus(true, "").ok());
    return info->endpoint;
  }

  std::string dir_;
  std::shared_ptr<FakePreparer> preparer_;
  PluginServerOptions opts_;
  std::unique_ptr<PluginServer> server_;
};

// --- registration ------------------------------------------------------------------------------

TEST_F(PluginServerTest, GetInfoAdvertisesDriverEndpointAndVersionsInOrder) {
  StartServer();
  EXPECT_EQ(server_->paths().dra_socket, dra_sock());
  EXPECT_EQ(server_->paths().registration_socket, reg_sock());
  EXPECT_EQ(server_->paths().plugin_data_dir, dir_ + "/plugins/accel-dra.dev");

  RegistrationClient reg(reg_sock());
  auto info = reg.GetInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->type, "DRAPlugin");
  EXPECT_EQ(info->name, "accel-dra.dev");
  EXPECT_EQ(info->endpoint, dra_sock());
  EXPECT_TRUE(fs::path(info->endpoint).is_absolute());
  EXPECT_EQ(info->supported_versions,
            (std::vector<std::string>{"v1.DRAPlugin", "v1beta1.DRAPlugin"}));
  EXPECT_TRUE(reg.NotifyRegistrationStatus(true, "").ok());
  EXPECT_EQ(server_->registration_socket_generation(), 1u);
}

TEST_F(PluginServerTest, GetInfoAdvertisesHealthServiceWhenSourceConfigured) {
  opts_.health_source = std::make_shared<FakeHealthSource>();
  StartServer();
  auto info = RegistrationClient(reg_sock()).GetInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  // The upstream helper's order; kubelet 1.37 takes the first DRAPlugin entry it supports and,
  // for health, prefers v1 over v1alpha1 among the advertised ones.
  EXPECT_EQ(info->supported_versions,
            (std::vector<std::string>{"v1.DRAPlugin", "v1beta1.DRAPlugin", "v1.DRAResourceHealth",
                                      "v1alpha1.DRAResourceHealth"}));
}

TEST_F(PluginServerTest, RelativeDirectoriesGiveAbsoluteEndpoint) {
  PluginServerOptions o;
  o.plugins_dir = "rel/plugins";
  o.registrar_dir = "rel/registry";
  PluginSocketPaths p = ComputeSocketPaths(o);
  EXPECT_TRUE(fs::path(p.dra_socket).is_absolute());
  EXPECT_EQ(fs::path(p.dra_socket).filename(), "dra.sock");
  EXPECT_EQ(fs::path(p.registration_socket).filename(), "accel-dra.dev-reg.sock");
}

TEST_F(PluginServerTest, DefaultPaths) {
  PluginSocketPaths p = ComputeSocketPaths(PluginServerOptions{});
  EXPECT_EQ(p.dra_socket, "/var/lib/kubelet/plugins/accel-dra.dev/dra.sock");
  EXPECT_EQ(p.registration_socket, "/var/lib/kubelet/plugins_registry/accel-dra.dev-reg.sock");
}

TEST_F(PluginServerTest, PodUidSocketNames) {
  opts_.pod_uid = "5f1c2d3e-aaaa-bbbb";
  StartServer();
  const std::string dra = dir_ + "/plugins/accel-dra.dev/dra-5f1c2d3e-aaaa-bbbb.sock";
  const std::string reg = dir_ + "/registry/accel-dra.dev-5f1c2d3e-aaaa-bbbb-reg.sock";
  EXPECT_EQ(server_->paths().dra_socket, dra);
  EXPECT_EQ(server_->paths().registration_socket, reg);
  auto info = RegistrationClient(reg).GetInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->endpoint, dra);
  auto r = DraClient(dra, DraApiVersion::kV1).NodePrepareResources({Claim("u1")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(fs::exists(dra_sock()));
  EXPECT_FALSE(fs::exists(reg_sock()));
}

TEST_F(PluginServerTest, ShortSocketIdIsFnv1a64OfThePodUid) {
  EXPECT_EQ(ShortSocketId(""), "cbf29ce484222325");
  EXPECT_EQ(ShortSocketId("a"), "af63dc4c8601ec8c");
  EXPECT_NE(ShortSocketId("5f1c2d3e-aaaa-bbbb"), ShortSocketId("5f1c2d3e-aaaa-bbbc"));
}

// A deep kubelet root (our e2e node's, under a build dir): dra-<podUID>.sock would exceed the
// 107-byte limit, so that socket (only that one) gets the short unique name and the plugin works.
TEST_F(PluginServerTest, PodUidSocketNameTooLongFallsBackToShortName) {
  opts_.pod_uid = "0b7f3c1e-5d2a-4c8e-9f61-2a3b4c5d6e7f";  // 36 characters, like a real pod UID
  const std::string data_dir = dir_ + "/" + std::string(40, 'k') + "/accel-dra.dev";
  opts_.plugins_dir = dir_ + "/" + std::string(40, 'k');
  ASSERT_GT((data_dir + "/dra-" + opts_.pod_uid + ".sock").size(), 107u);
  ASSERT_LE((data_dir + "/dra-" + ShortSocketId(opts_.pod_uid) + ".sock").size(), 107u);
  StartServer();
  const std::string dra = data_dir + "/dra-" + ShortSocketId(opts_.pod_uid) + ".sock";
  const std::string reg = dir_ + "/registry/accel-dra.dev-" + opts_.pod_uid + "-reg.sock";
  EXPECT_EQ(server_->paths().dra_socket, dra);
  EXPECT_EQ(server_->paths().registration_socket, reg) << "it fits, so it keeps the UID";
  auto info = RegistrationClient(reg).GetInfo();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->endpoint, dra);
  auto r = DraClient(dra, DraApiVersion::kV1).NodePrepareResources({Claim("u1")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // Another pod's UID gives another short name: two plugin pods never share a socket.
  PluginServerOptions other = opts_;
  other.pod_uid = "0b7f3c1e-5d2a-4c8e-9f61-2a3b4c5d6e80";
  EXPECT_NE(ComputeSocketPaths(other).dra_socket, dra);
}

TEST_F(PluginServerTest, NotifyRegistrationFailureRecreatesSocketWithBackoff) {
  StartServer();
  ASSERT_EQ(Register(), dra_sock());
  auto before = Stat(reg_sock());
  ASSERT_TRUE(before);

  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(RegistrationClient(reg_sock()).NotifyRegistrationStatus(false, "boom").ok());
  ASSERT_TRUE(WaitFor([&] { return server_->registration_socket_generation() == 2; }, seconds(5)));
  const auto first_delay = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(first_delay, milliseconds(45));
  auto after = Stat(reg_sock());
  ASSERT_TRUE(after);
  EXPECT_TRUE(S_ISSOCK(after->mode));
  EXPECT_EQ(after->mode & 0777, 0600u);
  EXPECT_NE(*before, *after) << "registration socket was not re-created";
  // The new socket answers.
  ASSERT_TRUE(RegistrationClient(reg_sock()).GetInfo().ok());

  // Consecutive failures back off (50 ms, then 100 ms, ...), and nothing loops by itself.
  const auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(RegistrationClient(reg_sock()).NotifyRegistrationStatus(false, "again").ok());
  ASSERT_TRUE(WaitFor([&] { return server_->registration_socket_generation() == 3; }, seconds(5)));
  EXPECT_GE(std::chrono::steady_clock::now() - t1, milliseconds(95));
  std::this_thread::sleep_for(milliseconds(600));
  EXPECT_EQ(server_->registration_socket_generation(), 3u)
      << "no re-creation without a new failure";
}

// --- DRA v1 / v1beta1 --------------------------------------------------------------------------

model::PrepareResult TwoDevices() {
  model::PrepareResult r;
  r.devices.push_back(fakes::WireDevice(
      {"gpu", "nic"}, "pool-a", "gpu-0",
      {"k8s.accel-dra.dev/gpu=common", "k8s.accel-dra.dev/gpu=x-gpu-0"}, std::string("share-7")));
  r.devices.push_back(fakes::WireDevice({}, "pool-a", "gpu-1", {}, std::nullopt));
  return r;
}

TEST_F(PluginServerTest, PrepareV1MapsDevicesErrorsAndMissingEntries) {
  StartServer();
  const std::string endpoint = Register();
  preparer_->SetPrepareResult("uid-a", TwoDevices());
  preparer_->SetPrepareResult(
      "uid-b", model::PrepareResult{{}, "device gpu-3 is unhealthy; delete the pod"});
  preparer_->Omit("uid-c");
  preparer_->SetExtraPrepareResult("uid-unrequested", TwoDevices());

  auto r = DraClient(endpoint, DraApiVersion::kV1)
               .NodePrepareResources({Claim("uid-a"), Claim("uid-b"), Claim("uid-c")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u) << "every requested claim and nothing else";
  EXPECT_EQ(r->at("uid-a"), TwoDevices()) << "share_id survives v1";
  EXPECT_EQ(r->at("uid-b").error, "device gpu-3 is unhealthy; delete the pod");
  EXPECT_TRUE(r->at("uid-b").devices.empty());
  EXPECT_NE(r->at("uid-c").error.find("no result"), std::string::npos) << r->at("uid-c").error;

  auto claims = preparer_->last_prepare_claims();
  ASSERT_EQ(claims.size(), 3u);
  EXPECT_EQ(claims[0], (model::ClaimRef{"ns1", "claim-uid-a", "uid-a"}));
}

TEST_F(PluginServerTest, PrepareV1beta1DropsShareId) {
  StartServer();
  preparer_->SetPrepareResult("uid-a", TwoDevices());
  auto r = DraClient(dra_sock(), DraApiVersion::kV1beta1).NodePrepareResources({Claim("uid-a")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 1u);
  model::PrepareResult want = TwoDevices();
  want.devices[0].share_id.reset();
  EXPECT_EQ(r->at("uid-a"), want);
  EXPECT_EQ(r->at("uid-a").devices[0].request_names, (std::vector<std::string>{"gpu", "nic"}));
}

TEST_F(PluginServerTest, UnprepareBothVersions) {
  StartServer();
  preparer_->SetUnprepareError("uid-b", "cannot reset gpu-3: busy");
  preparer_->Omit("uid-c");
  for (DraApiVersion api : {DraApiVersion::kV1, DraApiVersion::kV1beta1}) {
    auto r = DraClient(dra_sock(), api)
                 .NodeUnprepareResources({Claim("uid-a"), Claim("uid-b"), Claim("uid-c")});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->size(), 3u);
    EXPECT_EQ(r->at("uid-a"), "");
    EXPECT_EQ(r->at("uid-b"), "cannot reset gpu-3: busy");
    EXPECT_NE(r->at("uid-c").find("no result"), std::string::npos);
  }
  EXPECT_EQ(preparer_->unprepare_calls(), 2u);
}

TEST_F(PluginServerTest, EmptyRequestsSucceedWithoutCallingPreparer) {
  StartServer();
  for (DraApiVersion api : {DraApiVersion::kV1, DraApiVersion::kV1beta1}) {
    DraClient c(dra_sock(), api);
    auto p = c.NodePrepareResources({});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_TRUE(p->empty());
    auto u = c.NodeUnprepareResources({});
    ASSERT_TRUE(u.ok()) << u.status().ToString();
    EXPECT_TRUE(u->empty());
  }
  EXPECT_EQ(preparer_->prepare_calls(), 0u);
  EXPECT_EQ(preparer_->unprepare_calls(), 0u);
}

TEST_F(PluginServerTest, ClaimWithoutUidIsInvalidArgument) {
  StartServer();
  auto r = DraClient(dra_sock(), DraApiVersion::kV1)
               .NodePrepareResources({model::ClaimRef{"ns", "c", ""}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(preparer_->prepare_calls(), 0u);
}

TEST_F(PluginServerTest, DuplicateClaimsArePreparedOnce) {
  StartServer();
  auto r = DraClient(dra_sock(), DraApiVersion::kV1)
               .NodePrepareResources({Claim("uid-a"), Claim("uid-a")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->size(), 1u);
  EXPECT_EQ(preparer_->last_prepare_claims().size(), 1u);
}

TEST_F(PluginServerTest, SixtyFourPreparesRunConcurrently) {
  constexpr int kCalls = 64;
  StartServer();
  preparer_->HoldUntilConcurrent(kCalls, seconds(20));
  DraClient client(dra_sock(), DraApiVersion::kV1);  // one connection, like kubelet
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      auto r = client.NodePrepareResources({Claim("uid-" + std::to_string(i))}, seconds(30));
      if (r.ok() && r->size() == 1 && r->begin()->second.ok()) ok++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kCalls);
  EXPECT_EQ(preparer_->max_in_flight(), kCalls);
}

// --- sockets -----------------------------------------------------------------------------------

TEST_F(PluginServerTest, SocketsAreMode0600) {
  StartServer();
  for (const std::string& p : {dra_sock(), reg_sock()}) {
    auto id = Stat(p);
    ASSERT_TRUE(id) << p;
    EXPECT_TRUE(S_ISSOCK(id->mode)) << p;
    EXPECT_EQ(id->mode & 0777, 0600u) << p;
  }
}

TEST_F(PluginServerTest, StaleSocketsAreReplaced) {
  fs::create_directories(dir_ + "/plugins/accel-dra.dev");
  fs::create_directories(dir_ + "/registry");
  MakeStaleSocket(dra_sock());
  MakeStaleSocket(reg_sock());
  StartServer();
  EXPECT_EQ(Register(), dra_sock());
  auto r = DraClient(dra_sock(), DraApiVersion::kV1).NodePrepareResources({Claim("u")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

TEST_F(PluginServerTest, NonSocketFileAtSocketPathIsNotRemoved) {
  fs::create_directories(dir_ + "/plugins/accel-dra.dev");
  { std::ofstream(dra_sock()) << "precious"; }
  PluginServer server(opts_);
  Status st = server.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("not a unix socket"), std::string::npos) << st.message();
  EXPECT_TRUE(fs::is_regular_file(dra_sock()));
  EXPECT_FALSE(fs::exists(reg_sock()));
}

TEST_F(PluginServerTest, FailedRegistrationSocketUndoesStart) {
  fs::create_directories(dir_ + "/registry/accel-dra.dev-reg.sock");  // a directory in the way
  PluginServer server(opts_);
  Status st = server.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find(reg_sock()), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(dra_sock())) << "the DRA socket is removed again";
  EXPECT_TRUE(fs::is_directory(reg_sock()));
}

TEST_F(PluginServerTest, StopRemovesBothSockets) {
  StartServer();
  ASSERT_TRUE(fs::exists(dra_sock()));
  ASSERT_TRUE(fs::exists(reg_sock()));
  server_->Stop();
  EXPECT_FALSE(fs::exists(dra_sock()));
  EXPECT_FALSE(fs::exists(reg_sock()));
  server_->Stop();  // idempotent
  EXPECT_TRUE(fs::is_directory(dir_ + "/plugins/accel-dra.dev")) << "data dir is kept";
}

TEST_F(PluginServerTest, TooLongSocketPathIsAClearError) {
  opts_.plugins_dir = dir_ + "/" + std::string(100, 'p');
  PluginServer server(opts_);
  Status st = server.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("107"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(server.paths().dra_socket), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(opts_.plugins_dir)) << "checked before anything is created";
}

TEST_F(PluginServerTest, MissingPreparerIsAnError) {
  opts_.preparer = nullptr;
  PluginServer server(opts_);
  EXPECT_EQ(server.Start().code(), Code::kInvalidArgument);
}

// --- grpc.health.v1 ----------------------------------------------------------------------------

TEST_F(PluginServerTest, HealthCheckServingUntilDraSocketDisappears) {
  opts_.healthcheck_port = 0;
  StartServer();
  const int port = server_->healthcheck_port();
  ASSERT_GT(port, 0);
  const std::string target = "127.0.0.1:" + std::to_string(port);
  auto s = CheckGrpcHealth(target, "", seconds(5));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, ServingStatus::kServing);
  EXPECT_EQ(preparer_->prepare_calls(), 0u) << "the probe's empty prepare never reaches the core";

  ASSERT_TRUE(fs::remove(dra_sock()));
  s = CheckGrpcHealth(target, "", seconds(5));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, ServingStatus::kNotServing);
}

TEST_F(PluginServerTest, HealthCheckNotServingWithoutRegistrationSocket) {
  opts_.healthcheck_port = 0;
  StartServer();
  const std::string target = "127.0.0.1:" + std::to_string(server_->healthcheck_port());
  ASSERT_EQ(CheckGrpcHealth(target, "", seconds(5)).value_or(ServingStatus::kUnknown),
            ServingStatus::kServing);
  ASSERT_TRUE(fs::remove(reg_sock()));
  auto s = CheckGrpcHealth(target, "", seconds(5));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, ServingStatus::kNotServing);
  server_->Stop();
  EXPECT_FALSE(CheckGrpcHealth(target, "", seconds(2)).ok()) << "health endpoint stops too";
}

TEST_F(PluginServerTest, HealthPortDisabledByDefault) {
  StartServer();
  EXPECT_EQ(server_->healthcheck_port(), -1);
}

TEST_F(PluginServerTest, HealthPortInUseIsAClearError) {
  opts_.healthcheck_port = 0;
  StartServer();
  PluginServerOptions other = opts_;
  other.driver_name = "other.dev";
  other.healthcheck_port = server_->healthcheck_port();
  PluginServer second(other);
  Status st = second.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("healthcheck-port"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(dir_ + "/plugins/other.dev/dra.sock")) << "failed start cleans up";
  EXPECT_FALSE(fs::exists(dir_ + "/registry/other.dev-reg.sock"));
}

// The health endpoint binds 127.0.0.1 unless told otherwise (it bound 0.0.0.0: every interface
// of the node; issue 11): 127.0.0.2, another loopback address, cannot reach it.
TEST_F(PluginServerTest, HealthEndpointBindsLoopbackByDefault) {
  EXPECT_EQ(PluginServerOptions{}.healthcheck_address, "127.0.0.1");
  opts_.healthcheck_port = 0;
  StartServer();
  const std::string port = std::to_string(server_->healthcheck_port());
  EXPECT_TRUE(CheckGrpcHealth("127.0.0.1:" + port, "", seconds(5)).ok());
  auto other = CheckGrpcHealth("127.0.0.2:" + port, "", seconds(2));
  EXPECT_FALSE(other.ok()) << "reachable on another address";
}

// What start-up recovery lost (issue 11: a corrupt checkpoint) is reported on the "recovery"
// service, while liveness stays SERVING (a restart would not bring the state back).
TEST_F(PluginServerTest, RecoveryServiceReportsWhatRecoveryLost) {
  opts_.healthcheck_port = 0;
  opts_.recovery_problem = "the checkpoint was unusable and was moved aside";
  StartServer();
  const std::string target = "127.0.0.1:" + std::to_string(server_->healthcheck_port());
  EXPECT_EQ(kRecoveryHealthService, "recovery");
  auto recovery = CheckGrpcHealth(target, "recovery", seconds(5));
  ASSERT_TRUE(recovery.ok()) << recovery.status().ToString();
  EXPECT_EQ(*recovery, ServingStatus::kNotServing);
  auto liveness = CheckGrpcHealth(target, "", seconds(5));
  ASSERT_TRUE(liveness.ok()) << liveness.status().ToString();
  EXPECT_EQ(*liveness, ServingStatus::kServing);
}

TEST_F(PluginServerTest, RecoveryServiceIsServingWhenNothingWasLost) {
  opts_.healthcheck_port = 0;
  StartServer();
  const std::string target = "127.0.0.1:" + std::to_string(server_->healthcheck_port());
  auto recovery = CheckGrpcHealth(target, "recovery", seconds(5));
  ASSERT_TRUE(recovery.ok()) << recovery.status().ToString();
  EXPECT_EQ(*recovery, ServingStatus::kServing);
  // Like liveness, it follows the sockets.
  ASSERT_TRUE(fs::remove(reg_sock()));
  recovery = CheckGrpcHealth(target, "recovery", seconds(5));
  ASSERT_TRUE(recovery.ok()) << recovery.status().ToString();
  EXPECT_EQ(*recovery, ServingStatus::kNotServing);
}

TEST(DefaultHealthcheckAddress, PodIpFromTheDownwardApiElseLoopback) {
  const char* old = std::getenv("POD_IP");
  const std::string saved = old != nullptr ? old : "";
  ::unsetenv("POD_IP");
  EXPECT_EQ(DefaultHealthcheckAddress(), "127.0.0.1");
  ::setenv("POD_IP", "", 1);
  EXPECT_EQ(DefaultHealthcheckAddress(), "127.0.0.1");
  ::setenv("POD_IP", "10.244.1.7", 1);
  EXPECT_EQ(DefaultHealthcheckAddress(), "10.244.1.7");
  if (old != nullptr) {
    ::setenv("POD_IP", saved.c_str(), 1);
  } else {
    ::unsetenv("POD_IP");
  }
}

// Streams of grpc.health.v1 Watch past the limit are refused; a closed one frees its slot.
TEST_F(PluginServerTest, HealthWatchStreamsAreCapped) {
  opts_.healthcheck_port = 0;
  opts_.max_health_streams = 2;
  StartServer();
  const std::string target = "127.0.0.1:" + std::to_string(server_->healthcheck_port());
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto stub = ::grpc::health::v1::Health::NewStub(channel);
  using Reader = grpc::ClientReader<::grpc::health::v1::HealthCheckResponse>;
  struct Open {
    std::unique_ptr<grpc::ClientContext> ctx = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<Reader> reader;
  };
  auto open = [&](::grpc::health::v1::HealthCheckResponse* first) {
    Open o;
    o.ctx->set_deadline(std::chrono::system_clock::now() + seconds(10));
    o.reader = stub->Watch(o.ctx.get(), ::grpc::health::v1::HealthCheckRequest());
    EXPECT_TRUE(o.reader->Read(first));
    return o;
  };
  ::grpc::health::v1::HealthCheckResponse msg;
  std::vector<Open> streams;
  streams.push_back(open(&msg));
  EXPECT_EQ(msg.status(), ::grpc::health::v1::HealthCheckResponse::SERVING);
  streams.push_back(open(&msg));
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
    auto third = stub->Watch(&ctx, ::grpc::health::v1::HealthCheckRequest());
    EXPECT_FALSE(third->Read(&msg));
    grpc::Status st = third->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(st.error_message().find("limit 2"), std::string::npos) << st.error_message();
  }
  streams[0].ctx->TryCancel();
  streams[0].reader->Finish();
  streams.erase(streams.begin());
  // The server notices the cancellation within its 1 s re-check.
  EXPECT_TRUE(WaitFor(
      [&] {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + seconds(5));
        auto r = stub->Watch(&ctx, ::grpc::health::v1::HealthCheckRequest());
        if (!r->Read(&msg)) {
          r->Finish();
          return false;
        }
        ctx.TryCancel();
        r->Finish();
        return true;
      },
      seconds(5)));
  for (auto& o : streams) o.ctx->TryCancel();
  for (auto& o : streams) o.reader->Finish();
}

// --- v1alpha1 NodeWatchResources ---------------------------------------------------------------

TEST_F(PluginServerTest, NodeWatchResourcesStreamsChangesAndResends) {
  auto source = std::make_shared<FakeHealthSource>();
  source->Set(
      {model::DeviceHealth{"pool-a", "gpu-0", model::DeviceHealthStatus::kHealthy, 0, 45, ""},
       model::DeviceHealth{"pool-a", "gpu-1", model::DeviceHealthStatus::kHealthy, 1700000000, 0,
                           ""}});
  opts_.health_source = source;
  StartServer();

  std::vector<std::vector<model::DeviceHealth>> got;
  std::vector<std::chrono::steady_clock::time_point> when;
  const int64_t start_unix =
      std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  Status st =
      DraClient(dra_sock(), DraApiVersion::kV1)
          .WatchResources(
              [&](const std::vector<model::DeviceHealth>& devices) {
                got.push_back(devices);
                when.push_back(std::chrono::steady_clock::now());
                if (got.size() == 1) {
                  source->Set({model::DeviceHealth{
                      "pool-a", "gpu-0", model::DeviceHealthStatus::kUnhealthy, 0, 45, ""}});
                }
                return got.size() < 3;
              },
              seconds(10));
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(got.size(), 3u);
  ASSERT_EQ(got[0].size(), 2u);
  EXPECT_EQ(got[0][0].pool, "pool-a");
  EXPECT_EQ(got[0][0].device, "gpu-0");
  EXPECT_EQ(got[0][0].health, model::DeviceHealthStatus::kHealthy);
  EXPECT_EQ(got[0][0].health_check_timeout_seconds, 45);
  EXPECT_GE(got[0][0].last_updated_unix, start_unix) << "0 is stamped with the send time";
  EXPECT_EQ(got[0][1].last_updated_unix, 1700000000);
  // The change arrives promptly (poll 20 ms), well before the 700 ms resend.
  ASSERT_EQ(got[1].size(), 1u);
  EXPECT_EQ(got[1][0].health, model::DeviceHealthStatus::kUnhealthy);
  EXPECT_LT(when[1] - when[0], milliseconds(500));
  // Without a change the full list is re-sent after the resend interval (with a fresh timestamp).
  ASSERT_EQ(got[2].size(), 1u);
  EXPECT_EQ(got[2][0].device, "gpu-0");
  EXPECT_EQ(got[2][0].health, model::DeviceHealthStatus::kUnhealthy);
  EXPECT_GE(got[2][0].last_updated_unix, got[1][0].last_updated_unix);
  EXPECT_GE(when[2] - when[1], milliseconds(600));
}

// kubelet 1.37 watches v1, older kubelets v1alpha1: both carry the same list, message included.
TEST_F(PluginServerTest, NodeWatchResourcesV1AndV1alpha1StreamTheSameHealth) {
  auto source = std::make_shared<FakeHealthSource>();
  model::DeviceHealth bad{"pool-a",   "gpu-0", model::DeviceHealthStatus::kUnhealthy,
                          1700000000, 0,       ""};
  bad.message = "device node /dev/accel0 is missing";
  model::DeviceHealth good{"pool-a",   "gpu-1", model::DeviceHealthStatus::kHealthy,
                           1700000000, 0,       ""};
  good.message = "all health checks pass";
  model::DeviceHealth unknown{"pool-a",   "gpu-2", model::DeviceHealthStatus::kUnknown,
                              1700000000, 0,       ""};
  unknown.message = std::string(2000, 'x');  // longer than the wire allows
  source->Set({bad, good, unknown});
  opts_.health_source = source;
  StartServer();
  std::map<HealthApiVersion, std::vector<model::DeviceHealth>> got;
  for (HealthApiVersion api : {HealthApiVersion::kV1, HealthApiVersion::kV1alpha1}) {
    Status st = DraClient(dra_sock(), DraApiVersion::kV1)
                    .WatchResources(
                        [&](const std::vector<model::DeviceHealth>& devices) {
                          got[api] = devices;
                          return false;
                        },
                        seconds(5), api);
    ASSERT_TRUE(st.ok()) << HealthApiVersionName(api) << ": " << st.ToString();
  }
  ASSERT_EQ(got[HealthApiVersion::kV1].size(), 3u);
  EXPECT_EQ(got[HealthApiVersion::kV1], got[HealthApiVersion::kV1alpha1]);
  const auto& v1 = got[HealthApiVersion::kV1];
  EXPECT_EQ(v1[0], bad);
  EXPECT_EQ(v1[1], good);
  EXPECT_EQ(v1[2].health, model::DeviceHealthStatus::kUnknown);
  EXPECT_EQ(v1[2].message.size(), 1024u) << "cut to the wire's 1024 bytes";
}

TEST_F(PluginServerTest, NodeWatchResourcesUnimplementedWithoutSource) {
  StartServer();
  Status st = DraClient(dra_sock(), DraApiVersion::kV1)
                  .WatchResources([](const std::vector<model::DeviceHealth>&) { return false; },
                                  seconds(5));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("UNIMPLEMENTED"), std::string::npos) << st.message();
}

// kubelet keeps one NodeWatchResources stream; more than max_health_streams at once are refused
// (each holds a thread of the DRA socket's server, which also serves prepares).
TEST_F(PluginServerTest, NodeWatchResourcesStreamsAreCapped) {
  auto source = std::make_shared<FakeHealthSource>();
  source->Set(
      {model::DeviceHealth{"pool-a", "gpu-0", model::DeviceHealthStatus::kHealthy, 0, 0, ""}});
  opts_.health_source = source;
  opts_.max_health_streams = 2;
  StartServer();
  std::atomic<bool> release{false};
  std::atomic<int> open{0};
  std::vector<std::thread> holders;
  // The limit counts both dra-health versions together.
  for (HealthApiVersion api : {HealthApiVersion::kV1, HealthApiVersion::kV1alpha1}) {
    holders.emplace_back([&, api] {
      bool counted = false;
      Status st = DraClient(dra_sock(), DraApiVersion::kV1)
                      .WatchResources(
                          [&](const std::vector<model::DeviceHealth>&) {
                            if (!counted) open++;
                            counted = true;
                            return !release.load();
                          },
                          seconds(20), api);
      EXPECT_TRUE(st.ok()) << st.ToString();
    });
  }
  ASSERT_TRUE(WaitFor([&] { return open.load() == 2; }, seconds(5)));
  Status third = DraClient(dra_sock(), DraApiVersion::kV1)
                     .WatchResources([](const std::vector<model::DeviceHealth>&) { return false; },
                                     seconds(5));
  ASSERT_FALSE(third.ok());
  EXPECT_NE(third.message().find("RESOURCE_EXHAUSTED"), std::string::npos) << third.message();
  EXPECT_NE(third.message().find("limit 2"), std::string::npos) << third.message();
  release = true;  // the holders return false at their next message (the resend)
  for (auto& t : holders) t.join();
  EXPECT_TRUE(WaitFor(
      [&] {
        return DraClient(dra_sock(), DraApiVersion::kV1)
            .WatchResources([](const std::vector<model::DeviceHealth>&) { return false; },
                            seconds(5))
            .ok();
      },
      seconds(5)));
}

TEST_F(PluginServerTest, StopEndsOpenHealthStreamPromptly) {
  auto source = std::make_shared<FakeHealthSource>();
  source->Set(
      {model::DeviceHealth{"pool-a", "gpu-0", model::DeviceHealthStatus::kHealthy, 0, 0, ""}});
  opts_.health_source = source;
  StartServer();
  std::atomic<bool> first{false};
  Status stream_status;
  std::thread watcher([&] {
    stream_status = DraClient(dra_sock(), DraApiVersion::kV1)
                        .WatchResources(
                            [&](const std::vector<model::DeviceHealth>&) {
                              first = true;
                              return true;
                            },
                            seconds(30));
  });
  ASSERT_TRUE(WaitFor([&] { return first.load(); }, seconds(5)));
  const auto t0 = std::chrono::steady_clock::now();
  server_->Stop();
  watcher.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(1500));
  EXPECT_FALSE(stream_status.ok()) << "stream ends with an error so kubelet re-opens it";
}

}  // namespace
}  // namespace accel_dra::kubelet
