// In-pod inspection against fixture roots; RESULT formatting/parsing; the static tool binary.

#include "accel_dra/probe/inspect.h"

#include <elf.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "run_command.h"

namespace accel_dra::probe {
namespace {
namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class InspectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("probe-inspect-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "dev");
  }
  void TearDown() override { fs::remove_all(root_); }
  void Touch(const std::string& rel, const std::string& content = "") {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel) << content;
  }
  InspectOptions Options() {
    InspectOptions o;
    o.root = root_;
    o.hostname = "pod-1";
    // Fixture "device nodes" are regular files whose name does not end in ".notdev".
    o.is_char_device = [](const fs::path& p) {
      return fs::is_regular_file(p) && p.extension() != ".notdev";
    };
    return o;
  }
  fs::path root_;
};

TEST_F(InspectTest, ListsDeviceNodesWithoutRuntimeDefaults) {
  for (const char* d : {"dev/null",         "dev/zero",         "dev/full",
                        "dev/random",       "dev/urandom",      "dev/tty",
                        "dev/console",      "dev/ptmx",         "dev/pts/0",
                        "dev/shm/x",        "dev/mqueue/q",     "dev/fd/1",
                        "dev/accel-sim1",   "dev/accel-sim0",   "dev/nvidia0",
                        "dev/nvidiactl",    "dev/dri/card1",    "dev/dri/renderD128",
                        "dev/kfd",          "dev/accel/accel0", "dev/fuse",
                        "dev/readme.notdev"}) {
    Touch(d);
  }
  fs::create_symlink("accel-sim0", root_ / "dev/link-to-sim");
  InspectResult r = Inspect(Options());
  EXPECT_THAT(r.device_nodes, ElementsAre("/dev/accel-sim0", "/dev/accel-sim1", "/dev/accel/accel0",
                                          "/dev/dri/card1", "/dev/dri/renderD128", "/dev/fuse",
                                          "/dev/kfd", "/dev/nvidia0", "/dev/nvidiactl"));
  EXPECT_THAT(
      r.accelerator_devices,
      ElementsAre("/dev/accel-sim0", "/dev/accel-sim1", "/dev/accel/accel0", "/dev/dri/card1",
                  "/dev/dri/renderD128", "/dev/kfd", "/dev/nvidia0", "/dev/nvidiactl"));
}

TEST_F(InspectTest, NothingVisible) {
  Touch("dev/null");
  InspectResult r = Inspect(Options());
  std::string out = FormatResult(r);
  EXPECT_EQ(out,
            "RESULT: INSPECT_VERSION=1\n"
            "RESULT: INSPECT_TOOL=binary\n"
            "RESULT: HOSTNAME=pod-1\n"
            "RESULT: DEVICE_NODE_COUNT=0\n"
            "RESULT: DEVICE_NODES=\n"
            "RESULT: ACCELERATOR_COUNT=0\n"
            "RESULT: ACCELERATOR_DEVICES=\n"
            "RESULT: ACCEL_ENV_COUNT=0\n"
            "RESULT: DRIVER_VERSION=\n"
            "RESULT: DRIVER_VERSION_SOURCE=none\n"
            "RESULT: RUNTIME_VERSION=\n"
            "RESULT: DONE=true\n");
}

TEST_F(InspectTest, DriverAndRuntimeVersionFromTheDriverInfoFiles) {
  Touch("run/accel-dra/driver/driver-version", "570.86.15\n");
  Touch("run/accel-dra/driver/runtime-version", "12.8.0\n");
  InspectResult r = Inspect(Options());
  EXPECT_EQ(r.driver_version, "570.86.15");
  EXPECT_EQ(r.driver_version_source, "/run/accel-dra/driver/driver-version");
  EXPECT_EQ(r.runtime_version, "12.8.0");
  std::string out = FormatResult(r);
  EXPECT_THAT(out, HasSubstr("RESULT: RUNTIME_VERSION=12.8.0\n"));
  EXPECT_EQ(ParseResult(out).runtime_version, "12.8.0");
}

TEST_F(InspectTest, EnvironmentAndSimulatedDriverVersion) {
  Touch("dev/accel-sim0");
  Touch("run/accel-dra/driver/version", "1.2.3\n");
  Touch("proc/driver/nvidia/version",
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue\n");
  auto o = Options();
  o.environ = {"PATH=/bin",
               "ACCEL_VISIBLE_DEVICES=gpu-0",
               "ACCEL_DEVICE_GPU_0=gpu-0",
               "ACCEL_DEVICE_GPU_0_SHARING_STRATEGY=Exclusive",
               "ACCELX=no",
               "ACCEL_MULTI=a\nb"};
  InspectResult r = Inspect(o);
  EXPECT_EQ(r.driver_version, "1.2.3");
  EXPECT_EQ(r.driver_version_source, "/run/accel-dra/driver/version");
  std::string out = FormatResult(r);
  EXPECT_THAT(out, HasSubstr("RESULT: ACCEL_ENV_COUNT=4\n"
                             "RESULT: ENV_ACCEL_DEVICE_GPU_0=gpu-0\n"
                             "RESULT: ENV_ACCEL_DEVICE_GPU_0_SHARING_STRATEGY=Exclusive\n"
                             "RESULT: ENV_ACCEL_MULTI=a b\n"
                             "RESULT: ENV_ACCEL_VISIBLE_DEVICES=gpu-0\n"));
  EXPECT_THAT(out, HasSubstr("RESULT: DEVICE_NODES=/dev/accel-sim0\n"));
  EXPECT_THAT(out, HasSubstr("RESULT: ACCELERATOR_COUNT=1\n"));
}

TEST_F(InspectTest, NvidiaAndSysModuleVersions) {
  Touch("proc/driver/nvidia/version",
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
        "GCC version: gcc 12\n");
  InspectResult r = Inspect(Options());
  EXPECT_EQ(r.driver_version, "550.54.15");
  EXPECT_EQ(r.driver_version_source, "/proc/driver/nvidia/version");
  fs::remove_all(root_ / "proc");
  Touch("sys/module/amdgpu/version", "6.7.0\n");
  r = Inspect(Options());
  EXPECT_EQ(r.driver_version, "6.7.0");
  EXPECT_EQ(r.driver_version_source, "/sys/module/amdgpu/version");
}

TEST(InspectParse, RoundTripAndNoise) {
  InspectResult r;
  r.hostname = "h";
  r.device_nodes = {"/dev/accel-sim0", "/dev/accel-sim1"};
  r.accelerator_devices = r.device_nodes;
  r.accel_env = {{"ACCEL_VISIBLE_DEVICES", "gpu-0,gpu-1"}, {"ACCEL_X", "a=b"}};
  r.driver_version = "1.0.0";
  r.driver_version_source = "/run/accel-dra/driver/version";
  std::string text = "some log line\n" + FormatResult(r) + "trailing\n";
  InspectResult p = ParseResult(text);
  EXPECT_TRUE(p.done);
  EXPECT_EQ(p.tool, "binary");
  EXPECT_EQ(p.hostname, "h");
  EXPECT_EQ(p.device_nodes, r.device_nodes);
  EXPECT_EQ(p.accelerator_devices, r.accelerator_devices);
  EXPECT_EQ(p.accel_env, r.accel_env);
  EXPECT_EQ(p.driver_version, "1.0.0");
  EXPECT_FALSE(ParseResult("RESULT: DEVICE_NODES=\n").done);  // incomplete output
}

TEST(InspectPatterns, VendorAndDefaults) {
  EXPECT_TRUE(IsVendorDevice("/dev/nvidia3"));
  EXPECT_TRUE(IsVendorDevice("/dev/accel-sim12"));
  EXPECT_FALSE(IsVendorDevice("/dev/fuse"));
  EXPECT_FALSE(IsVendorDevice("/dev/dri/by-path"));
  EXPECT_TRUE(IsRuntimeDefaultDevice("/dev/pts/ptmx"));
  EXPECT_FALSE(IsRuntimeDefaultDevice("/dev/ttyS0"));
  EXPECT_EQ(ParseDriverVersion("  2.0.1  \n"), "2.0.1");
}

// The in-pod tool runs in any image: statically linked, no ELF interpreter.
TEST(InspectTool, IsStaticAndRuns) {
  const std::string tool = std::string(ACCEL_DRA_BINARY_DIR) + "/src/cmd/inspect/accel-dra-inspect";
  std::ifstream f(tool, std::ios::binary);
  ASSERT_TRUE(f) << tool;
  Elf64_Ehdr eh{};
  f.read(reinterpret_cast<char*>(&eh), sizeof(eh));
  ASSERT_EQ(std::string(reinterpret_cast<char*>(eh.e_ident), 4),
            "\x7f"
            "ELF");
#ifdef ACCEL_DRA_INSPECT_NOT_STATIC
  eh.e_phnum = 0;  // sanitizer build: linked dynamically on purpose
#endif
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    f.seekg(static_cast<std::streamoff>(eh.e_phoff + static_cast<uint64_t>(i) * eh.e_phentsize));
    f.read(reinterpret_cast<char*>(&ph), sizeof(ph));
    EXPECT_NE(ph.p_type, static_cast<uint32_t>(PT_INTERP)) << tool << " is dynamically linked";
    EXPECT_NE(ph.p_type, static_cast<uint32_t>(PT_DYNAMIC)) << tool << " is dynamically linked";
  }
  int rc = 0;
  std::string out =
      testing::RunCommand(("ACCEL_PROBE_TEST=yes " + tool + " --root /nonexistent"), &rc);
  EXPECT_EQ(rc, 0) << out;
  InspectResult r = ParseResult(out);
  EXPECT_TRUE(r.done) << out;
  EXPECT_EQ(r.accel_env["ACCEL_PROBE_TEST"], "yes");
  EXPECT_TRUE(r.device_nodes.empty());
}

// `accel-dra-probe inspect` is the same in-pod mode.
TEST(InspectTool, ProbeSubcommandPrintsTheSameKeys) {
  const std::string probe = std::string(ACCEL_DRA_BINARY_DIR) + "/src/cmd/probe/accel-dra-probe";
  int rc = 0;
  std::string out = testing::RunCommand(
      ("ACCEL_VISIBLE_DEVICES=gpu-3 " + probe + " inspect --root /nonexistent"), &rc);
  EXPECT_EQ(rc, 0) << out;
  InspectResult r = ParseResult(out);
  EXPECT_TRUE(r.done) << out;
  EXPECT_EQ(r.tool, "binary");
  EXPECT_EQ(r.accel_env["ACCEL_VISIBLE_DEVICES"], "gpu-3");
  EXPECT_THAT(out, HasSubstr("RESULT: DRIVER_VERSION_SOURCE=none\n"));
}

}  // namespace
}  // namespace accel_dra::probe
