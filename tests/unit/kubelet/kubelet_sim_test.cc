// accel-dra-kubelet-sim against a real PluginServer (fake ClaimPreparer): the tool's commands,
// JSON output and exit codes, as integration tests will use them.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "accel_dra/kubelet/plugin_server.h"
#include "fakes.h"

namespace accel_dra::kubelet {
namespace {

using nlohmann::json;

struct RunResult {
  int exit_code = -1;
  std::string out;
};

RunResult RunSim(const std::string& args) {
  const std::string cmd = std::string(ACCEL_DRA_KUBELET_SIM) + " " + args + " 2>/dev/null";
  RunResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class KubeletSimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dra-sim-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    preparer_ = std::make_shared<fakes::FakePreparer>();
    source_ = std::make_shared<fakes::FakeHealthSource>();
    source_->Set(
        {model::DeviceHealth{"pool-a", "gpu-0", model::DeviceHealthStatus::kUnhealthy, 0, 60, ""}});
    PluginServerOptions o;
    o.registrar_dir = dir_ + "/registry";
    o.plugins_dir = dir_ + "/plugins";
    o.preparer = preparer_;
    o.health_source = source_;
    o.healthcheck_port = 0;
    server_ = std::make_unique<PluginServer>(o);
    Status st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  std::shared_ptr<fakes::FakePreparer> preparer_;
  std::shared_ptr<fakes::FakeHealthSource> source_;
  std::unique_ptr<PluginServer> server_;
};

TEST_F(KubeletSimTest, RegisterPrintsPluginInfo) {
  auto r = RunSim("register --registrar-dir " + dir_ + "/registry --driver accel-dra.dev");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  json j = json::parse(r.out);
  EXPECT_EQ(j["type"], "DRAPlugin");
  EXPECT_EQ(j["name"], "accel-dra.dev");
  EXPECT_EQ(j["endpoint"], server_->paths().dra_socket);
  EXPECT_EQ(j["supported_versions"], json({"v1.DRAPlugin", "v1beta1.DRAPlugin",
                                           "v1.DRAResourceHealth", "v1alpha1.DRAResourceHealth"}));
  EXPECT_EQ(j["selected_api"], "v1");
  EXPECT_EQ(j["registered"], true);
}

TEST_F(KubeletSimTest, RegisterRejectTriggersSocketRecreation) {
  auto r = RunSim("register --socket " + server_->paths().registration_socket +
                  " --reject 'simulated failure'");
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_EQ(json::parse(r.out)["registered"], false);
  auto wrong = RunSim("register --registrar-dir " + dir_ + "/registry --driver accel-dra.dev " +
                      "--socket " + server_->paths().registration_socket + " --no-notify");
  EXPECT_EQ(wrong.exit_code, 0) << wrong.out;
}

TEST_F(KubeletSimTest, RegisterMissingSocketFails) {
  auto r = RunSim("register --registrar-dir " + dir_ + "/registry --driver nope.dev");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_EQ(json::parse(r.out)["code"], "Unavailable");
}

TEST_F(KubeletSimTest, PrepareAndUnprepareViaRegistration) {
  preparer_->SetPrepareResult(
      "u1",
      model::PrepareResult{{fakes::WireDevice({"gpu"}, "pool-a", "gpu-0",
                                              {"k8s.accel-dra.dev/gpu=u1"}, std::string("s1"))},
                           ""});
  const std::string target = "--registrar-dir " + dir_ + "/registry --driver accel-dra.dev";
  auto r = RunSim("prepare " + target + " --claim ns/c1/u1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  json j = json::parse(r.out);
  EXPECT_EQ(j["api"], "v1");
  EXPECT_EQ(j["endpoint"], server_->paths().dra_socket);
  const json& dev = j["claims"]["u1"]["devices"][0];
  EXPECT_EQ(dev["pool_name"], "pool-a");
  EXPECT_EQ(dev["device_name"], "gpu-0");
  EXPECT_EQ(dev["request_names"], json({"gpu"}));
  EXPECT_EQ(dev["cdi_device_ids"], json({"k8s.accel-dra.dev/gpu=u1"}));
  EXPECT_EQ(dev["share_id"], "s1");
  EXPECT_EQ(j["kubelet_errors"], json::array());

  auto beta =
      RunSim("prepare --socket " + server_->paths().dra_socket + " --api v1beta1 --claim ns/c1/u1");
  ASSERT_EQ(beta.exit_code, 0) << beta.out;
  EXPECT_FALSE(json::parse(beta.out)["claims"]["u1"]["devices"][0].contains("share_id"));

  auto u = RunSim("unprepare " + target + " --claim ns/c1/u1 --api v1beta1");
  ASSERT_EQ(u.exit_code, 0) << u.out;
  EXPECT_EQ(json::parse(u.out)["claims"]["u1"]["error"], "");
}

TEST_F(KubeletSimTest, PerClaimErrorIsExitCode3) {
  preparer_->SetPrepareResult("bad", model::PrepareResult{{}, "no such device"});
  auto r = RunSim("prepare --socket " + server_->paths().dra_socket +
                  " --claim ns/good/ok --claim ns/broken/bad");
  EXPECT_EQ(r.exit_code, 3) << r.out;
  json j = json::parse(r.out);
  EXPECT_EQ(j["claims"]["bad"]["error"], "no such device");
  ASSERT_EQ(j["kubelet_errors"].size(), 1u);
  EXPECT_EQ(j["kubelet_errors"][0],
            "NodePrepareResources failed for ResourceClaim broken: no such device");
}

TEST_F(KubeletSimTest, BadClaimSyntaxIsRejected) {
  auto r = RunSim("prepare --socket " + server_->paths().dra_socket + " --claim ns/only-two");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_EQ(preparer_->prepare_calls(), 0u);
}

TEST_F(KubeletSimTest, WatchHealthAndHealthcheck) {
  auto w = RunSim("watch-health --socket " + server_->paths().dra_socket + " --count 1");
  ASSERT_EQ(w.exit_code, 0) << w.out;
  json j = json::parse(w.out);
  EXPECT_EQ(j["devices"][0]["device_name"], "gpu-0");
  EXPECT_EQ(j["devices"][0]["health"], "Unhealthy");
  EXPECT_EQ(j["devices"][0]["health_check_timeout_seconds"], 60);
  // The same on the older dra-health version.
  auto old =
      RunSim("watch-health --api v1alpha1 --socket " + server_->paths().dra_socket + " --count 1");
  ASSERT_EQ(old.exit_code, 0) << old.out;
  json o = json::parse(old.out);
  for (const char* k : {"device_name", "health", "health_check_timeout_seconds", "message"}) {
    EXPECT_EQ(o["devices"][0][k], j["devices"][0][k]) << k;
  }

  auto h = RunSim("healthcheck --address 127.0.0.1:" + std::to_string(server_->healthcheck_port()));
  ASSERT_EQ(h.exit_code, 0) << h.out;
  EXPECT_EQ(json::parse(h.out)["status"], "SERVING");
}

}  // namespace
}  // namespace accel_dra::kubelet
