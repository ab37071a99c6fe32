// Driver stacks (discovery/driver_stack.h) on fixture driver roots made at test time: files whose
// names carry real sonames and versions, under a host root, so the injected set is exactly what
// the stack promises and every mismatch is an error.

#include "accel_dra/discovery/driver_stack.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "accel_dra/discovery/simulated.h"

namespace accel_dra::discovery {
namespace {
namespace fs = std::filesystem;

constexpr const char* kVersion = "570.86.15";
constexpr const char* kLib = "/usr/lib/x86_64-linux-gnu";

class DriverStackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = fs::temp_directory_path() /
            ("driver-stack-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(host_);
    fs::create_directories(host_);
  }
  void TearDown() override { fs::remove_all(host_); }
  // A file under the driver root /run/nvidia/driver (inside the host root).
  void DriverFile(const std::string& path, const std::string& content = "x") {
    HostFile("/run/nvidia/driver" + path, content);
  }
  void HostFile(const std::string& path, const std::string& content = "x") {
    fs::path p = host_ / fs::path(path).relative_path();
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
  }
  DriverRoot Root() const {
    return DriverRoot{Env::Default(), HostRoot(host_), "/run/nvidia/driver"};
  }
  void CompleteNvidiaStack(const std::string& version = kVersion) {
    for (const char* lib : {"libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so"}) {
      DriverFile(std::string(kLib) + "/" + lib + "." + version);
    }
    DriverFile(std::string(kLib) + "/libcuda.so.1");  // the soname link: not a version
    DriverFile("/usr/bin/nvidia-smi", "#!/bin/sh\n");
    DriverFile("/lib/firmware/nvidia/" + version + "/gsp_ga10x.bin");
    HostFile("/dev/nvidiactl");
    HostFile("/dev/nvidia-uvm");
  }
  static std::set<std::pair<std::string, std::string>> Mounts(const DriverStack& s) {
    std::set<std::pair<std::string, std::string>> out;
    for (const auto& m : s.mounts) out.emplace(m.host_path, m.container_path);
    return out;
  }
  fs::path host_;
};

TEST_F(DriverStackTest, NvidiaInjectsExactlyTheMatchingLibrariesToolsNodesAndFirmware) {
  CompleteNvidiaStack();
  auto stack = MakeNvidiaDriverStack(Root())->Find(kVersion);
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  const std::string r = "/run/nvidia/driver";
  const std::string v = kVersion;
  EXPECT_EQ(Mounts(*stack),
            (std::set<std::pair<std::string, std::string>>{
                {r + kLib + "/libcuda.so." + v, std::string(kLib) + "/libcuda.so.1"},
                {r + kLib + "/libnvidia-ml.so." + v, std::string(kLib) + "/libnvidia-ml.so.1"},
                {r + kLib + "/libnvidia-ptxjitcompiler.so." + v,
                 std::string(kLib) + "/libnvidia-ptxjitcompiler.so.1"},
                {r + "/usr/bin/nvidia-smi", "/usr/bin/nvidia-smi"},
                {r + "/lib/firmware/nvidia/" + v, "/lib/firmware/nvidia/" + v}}));
  EXPECT_EQ(stack->device_nodes, (std::vector<std::string>{"/dev/nvidiactl", "/dev/nvidia-uvm"}));
  EXPECT_FALSE(stack->runtime_version.has_value());  // NVIDIA's comes from NVML
}

TEST_F(DriverStackTest, NvidiaLibrariesOfAnotherVersionAreAnError) {
  CompleteNvidiaStack("550.54.15");
  auto stack = MakeNvidiaDriverStack(Root())->Find(kVersion);
  ASSERT_FALSE(stack.ok());
  EXPECT_EQ(stack.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(stack.status().message().find("libcuda.so.550.54.15 is another version than the "
                                          "driver's 570.86.15"),
            std::string::npos)
      << stack.status().message();
}

TEST_F(DriverStackTest, NvidiaOptionalLibraryOfAnotherVersionIsAnErrorToo) {
  CompleteNvidiaStack();
  fs::remove(host_ /
             "run/nvidia/driver/usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.570.86.15");
  DriverFile(std::string(kLib) + "/libnvidia-ptxjitcompiler.so.550.54.15");
  auto stack = MakeNvidiaDriverStack(Root())->Find(kVersion);
  ASSERT_FALSE(stack.ok());
  EXPECT_NE(stack.status().message().find("libnvidia-ptxjitcompiler.so.550.54.15"),
            std::string::npos);
}

TEST_F(DriverStackTest, NvidiaMissingRequiredPartsAreErrors) {
  CompleteNvidiaStack();
  fs::remove(host_ / "run/nvidia/driver/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.570.86.15");
  auto no_nvml = MakeNvidiaDriverStack(Root())->Find(kVersion);
  ASSERT_FALSE(no_nvml.ok());
  EXPECT_NE(no_nvml.status().message().find("libnvidia-ml.so.570.86.15 is missing"),
            std::string::npos);
  DriverFile(std::string(kLib) + "/libnvidia-ml.so.570.86.15");
  fs::remove(host_ / "run/nvidia/driver/usr/bin/nvidia-smi");
  auto no_smi = MakeNvidiaDriverStack(Root())->Find(kVersion);
  ASSERT_FALSE(no_smi.ok());
  EXPECT_NE(no_smi.status().message().find("nvidia-smi is missing"), std::string::npos);
  EXPECT_FALSE(MakeNvidiaDriverStack(Root())->Find("").ok());  // version unknown
}

TEST_F(DriverStackTest, AmdGetsKfdAndTheRocmVersionFile) {
  HostFile("/dev/kfd");
  DriverFile("/opt/rocm/.info/version", "6.2.0-66\n");
  auto stack = MakeAmdDriverStack(Root())->Find("6.8.5");
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  EXPECT_EQ(stack->device_nodes, std::vector<std::string>{"/dev/kfd"});
  EXPECT_EQ(Mounts(*stack),
            (std::set<std::pair<std::string, std::string>>{
                {"/run/nvidia/driver/opt/rocm/.info/version", "/opt/rocm/.info/version"}}));
  EXPECT_EQ(stack->runtime_version, "6.2.0");
  fs::remove(host_ / "dev/kfd");
  EXPECT_FALSE(MakeAmdDriverStack(Root())->Find("6.8.5").ok());
}

TEST_F(DriverStackTest, IntelPublishesTheLevelZeroLoaderVersionAndInjectsNothing) {
  DriverFile(std::string(kLib) + "/libze_loader.so.1");
  DriverFile(std::string(kLib) + "/libze_loader.so.1.17.44");
  auto stack = MakeIntelDriverStack(Root())->Find("");
  ASSERT_TRUE(stack.ok());
  EXPECT_TRUE(stack->mounts.empty());
  EXPECT_EQ(stack->runtime_version, "1.17.44");
  EXPECT_TRUE(MakeHabanaDriverStack(Root())->Find("1.18.0")->mounts.empty());
  EXPECT_EQ(MakeDriverStack("tenstorrent", Root()), nullptr);
}

TEST_F(DriverStackTest, AttachMatchesTheRawDriverVersionAndMarksBrokenStacks) {
  CompleteNvidiaStack("560.35.03");
  model::Device gpu;
  gpu.name = "gpu-0000-3b-00-0";
  gpu.attributes.emplace("vendor", model::AttrValue::String("nvidia"));
  gpu.attributes.emplace("driverVersion", model::AttrValue::Version("560.35.3"));
  gpu.attributes.emplace("driverVersionRaw", model::AttrValue::String("560.35.03"));
  gpu.attributes.emplace("driverName", model::AttrValue::String("nvidia"));
  gpu.device_nodes = {"/dev/nvidia0", "/dev/nvidiactl"};
  model::Device other = gpu;
  other.name = "gpu-0000-3c-00-0";
  other.attributes.insert_or_assign("driverVersionRaw", model::AttrValue::String("570.86.15"));
  model::Device sim;
  sim.name = "gpu-0";
  sim.attributes.emplace("vendor", model::AttrValue::String("simulated"));
  model::Device nouveau = gpu;
  nouveau.name = "gpu-0000-3d-00-0";
  nouveau.attributes.insert_or_assign("driverName", model::AttrValue::String("nouveau"));
  std::vector<model::Device> devices = {gpu, other, sim, nouveau};
  auto problems = AttachDriverStacks(Root(), devices);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(devices[0].driver_stack_problem, "");
  EXPECT_EQ(devices[0].device_nodes,
            (std::vector<std::string>{"/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"}));
  EXPECT_EQ(devices[0].read_only_mounts.size(), 5u);
  EXPECT_NE(devices[1].driver_stack_problem.find("libcuda.so.560.35.03 is another version"),
            std::string::npos);
  EXPECT_TRUE(devices[1].read_only_mounts.empty());  // nothing half-injected
  EXPECT_EQ(devices[2], sim);                        // no stack for "simulated"
}

TEST_F(DriverStackTest, SimulatedNvidiaLikeDevicesGetTheStackAndARuntimeVersion) {
  CompleteNvidiaStack();
  auto profile = ParseSimProfile(
      "devices:\n- count: 2\n  driverVersion: 570.86.15\n  runtimeVersion: 12.8.0\n"
      "  driverStack: nvidia\n",
      "test");
  ASSERT_TRUE(profile.ok()) << profile.status().ToString();
  DriverStackBackend backend(std::make_unique<SimulatedBackend>(Env::Default(), "n", *profile),
                             Root());
  auto devices = backend.Discover();
  ASSERT_TRUE(devices.ok());
  ASSERT_EQ(devices->size(), 2u);
  for (const auto& d : *devices) {
    EXPECT_EQ(d.driver_stack_problem, "");
    EXPECT_EQ(d.attributes.at("runtimeVersion"), model::AttrValue::Version("12.8.0"));
    EXPECT_EQ(d.read_only_mounts.size(), 5u);
  }
}

TEST(SimProfileStackTest, RuntimeVersionAndDriverStackAreChecked) {
  auto ok = ParseSimProfile("devices:\n- count: 1\n", "t");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->groups[0].runtime_version, "1.0.0");  // simulated profiles always set one
  EXPECT_EQ(ok->groups[0].driver_stack, "");
  EXPECT_FALSE(ParseSimProfile("devices:\n- runtimeVersion: twelve\n", "t").ok());
  auto bad = ParseSimProfile("devices:\n- driverStack: cuda\n", "t");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("none, nvidia, amd, intel, habana"), std::string::npos);
  EXPECT_TRUE(ParseSimProfile("devices:\n- driverStack: none\n", "t").ok());
}

}  // namespace
}  // namespace accel_dra::discovery
