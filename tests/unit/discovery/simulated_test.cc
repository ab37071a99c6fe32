#include "accel_dra/discovery/simulated.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "accel_dra/discovery/manager.h"

namespace accel_dra::discovery {
namespace {
namespace fs = std::filesystem;

TEST(QuantityTest, CanonicalAndParse) {
  EXPECT_EQ(model::CanonicalBinaryQuantity(80ULL << 30), "80Gi");
  EXPECT_EQ(model::CanonicalBinaryQuantity(1536ULL << 20), "1536Mi");
  EXPECT_EQ(model::CanonicalBinaryQuantity(1000), "1000");
  EXPECT_EQ(model::CanonicalBinaryQuantity(0), "0");
  EXPECT_EQ(model::ParseQuantityBytes("80Gi").value(), 80ULL << 30);
  EXPECT_EQ(model::ParseQuantityBytes("2G").value(), 2000000000ULL);
  EXPECT_EQ(model::ParseQuantityBytes("123").value(), 123ULL);
  EXPECT_FALSE(model::ParseQuantityBytes("12Zi").ok());
  EXPECT_FALSE(model::ParseQuantityBytes("Gi").ok());
  EXPECT_FALSE(model::ParseQuantityBytes("99999999999999999999").ok());
}

TEST(SimulatedTest, DefaultDevicesAreRealisticAndDeterministic) {
  SimulatedBackend a(Env::Default(), "node-a", DefaultSimProfile(4));
  auto devs = a.Discover().value();
  ASSERT_EQ(devs.size(), 4u);
  EXPECT_EQ(devs[0].name, "gpu-0");
  EXPECT_EQ(devs[3].name, "gpu-3");
  const auto& attrs = devs[1].attributes;
  EXPECT_EQ(attrs.at("vendor").string_value(), "simulated");
  EXPECT_EQ(attrs.at("type").string_value(), "gpu");
  EXPECT_EQ(attrs.at("index").int_value(), 1);
  EXPECT_EQ(attrs.at("driverVersion").type(), model::AttrValue::Type::kVersion);
  EXPECT_EQ(attrs.at("numaNode").int_value(), 1);
  EXPECT_TRUE(attrs.count("pciBusID"));
  EXPECT_TRUE(attrs.count("resource.kubernetes.io/pcieRoot"));
  // The standard names beside ours, with the same values.
  EXPECT_EQ(attrs.at("resource.kubernetes.io/numaNode"), attrs.at("numaNode"));
  EXPECT_EQ(attrs.at("resource.kubernetes.io/pciBusID"), attrs.at("pciBusID"));
  EXPECT_EQ(devs[1].capacity.at("memory"), "80Gi");

  // Same node → same identities; another node → different UUIDs.
  SimulatedBackend again(Env::Default(), "node-a", DefaultSimProfile(4));
  EXPECT_EQ(again.Discover().value(), devs);
  SimulatedBackend b(Env::Default(), "node-b", DefaultSimProfile(4));
  EXPECT_NE(b.Discover().value()[0].attributes.at("uuid"), attrs.at("uuid"));
  std::set<std::string> uuids;
  for (const auto& d : devs) uuids.insert(d.attributes.at("uuid").string_value());
  EXPECT_EQ(uuids.size(), 4u);
}

TEST(SimulatedTest, ProfileParsing) {
  auto p = ParseSimProfile(R"(
devices:
- count: 2
  type: gpu
  memory: 40Gi
  driverVersion: 2.1.0
  deviceNode: /dev/accel-sim{index}
- count: 1
  type: npu
  productName: Sim NPU
)",
                           "p.yaml");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  SimulatedBackend sim(Env::Default(), "n", *p);
  auto devs = sim.Discover().value();
  ASSERT_EQ(devs.size(), 3u);
  EXPECT_EQ(devs[1].device_nodes, std::vector<std::string>{"/dev/accel-sim1"});
  EXPECT_EQ(devs[2].name, "npu-0");
  EXPECT_EQ(devs[2].attributes.at("productName").string_value(), "Sim NPU");
  EXPECT_EQ(devs[0].capacity.at("memory"), "40Gi");
}

TEST(SimulatedTest, ProfileErrorsNameTheProblem) {
  struct Case {
    const char* yaml;
    const char* expect;
  };
  for (const Case& c : {
           Case{"devices: [{count: 1, colour: red}]", "unknown key \"colour\""},
           Case{"devices: [{count: 1, driverVersion: banana}]", "is not a version"},
           Case{"devices: [{count: 1, memory: 12Zi}]", "unknown suffix"},
           Case{"devices: [{count: -1}]", "count must be between"},
           Case{"devices: [{count: 1, type: GPU}]", "DNS label"},
           Case{"devices: {a: 1}", "\"devices\" list"},
           Case{"devices: [{count: x}]", "devices[0]"},
           Case{"devices: [\n  - count: 1\n bad", "invalid YAML"},
           Case{"devices: []\ndriverVersionFile: rel/version", "must be an absolute path"},
           Case{"devices: []\ndriverVersionFile: [a]", "driverVersionFile must be a path"},
           Case{"devices: []\ndriverVersion: 1.0.0", "accepted: devices, driverVersionFile"},
           Case{"devices: [{count: 1, timeSliceControl: nvml}]", "timeSliceControl \"nvml\""},
           // Found by tests/fuzz/sim_profile_fuzz: the slice body could not be sent.
           Case{"devices: [{count: 1, productName: \"Sim \xbf\x9c\"}]", "productName is not UTF-8"},
           Case{"devices: []\n? [a]\n: b", "a key that is not a string"},
       }) {
    auto p = ParseSimProfile(c.yaml, "f.yaml");
    ASSERT_FALSE(p.ok()) << c.yaml;
    EXPECT_NE(p.status().message().find(c.expect), std::string::npos) << p.status().message();
    EXPECT_NE(p.status().message().find("f.yaml"), std::string::npos);
  }
}

TEST(SimulatedTest, ProfileFileChangesAreNoticed) {
  fs::path f = fs::temp_directory_path() / ("sim-profile-" + std::to_string(::getpid()) + ".yaml");
  Env* env = Env::Default();
  ASSERT_TRUE(env->WriteFileAtomic(f, "devices: [{count: 2}]\n").ok());
  auto profile = ParseSimProfile(env->ReadFile(f).value(), f.string()).value();
  DeviceManager mgr;
  mgr.AddBackend(std::make_unique<SimulatedBackend>(env, "n", profile, f));
  auto first = mgr.Refresh();
  EXPECT_EQ(first->devices().size(), 2u);
  EXPECT_FALSE(mgr.MaybeChanged());
  EXPECT_EQ(mgr.Refresh(), first);  // unchanged → same snapshot

  ASSERT_TRUE(env->WriteFileAtomic(f, "devices: [{count: 3}]\n").ok());
  EXPECT_TRUE(mgr.MaybeChanged());
  EXPECT_EQ(mgr.Refresh()->devices().size(), 3u);

  // An invalid edit keeps the last good profile.
  ASSERT_TRUE(env->WriteFileAtomic(f, "devices: [{count: oops}]\n").ok());
  EXPECT_FALSE(mgr.MaybeChanged());
  EXPECT_EQ(mgr.Refresh()->devices().size(), 3u);
  fs::remove(f);
}

// driverVersionFile: the simulated driver's version, published by devices without an explicit
// driverVersion, mounted into containers, re-read when it changes.
TEST(SimulatedTest, DriverVersionFile) {
  fs::path dir = fs::temp_directory_path() / ("sim-version-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::path version = dir / "version";
  Env* env = Env::Default();
  ASSERT_TRUE(env->WriteFileAtomic(version, "  535.104.05\n").ok());
  auto profile = ParseSimProfile("driverVersionFile: " + version.string() +
                                     "\ndevices:\n- count: 1\n- count: 1\n  driverVersion: 9.9.9\n"
                                     "  timeSliceControl: nvidia-smi\n",
                                 "p.yaml");
  ASSERT_TRUE(profile.ok()) << profile.status().ToString();
  EXPECT_EQ(profile->driver_version_file, version.string());
  DeviceManager mgr;
  mgr.AddBackend(std::make_unique<SimulatedBackend>(env, "n", *profile));
  auto inv = mgr.Refresh();
  ASSERT_EQ(inv->devices().size(), 2u);
  const model::Device& from_file = inv->devices()[0];
  const model::Device& explicit_version = inv->devices()[1];
  // Trimmed and normalised like a real driver's version.
  EXPECT_EQ(from_file.attributes.at("driverVersion").string_value(), "535.104.5");
  EXPECT_EQ(explicit_version.attributes.at("driverVersion").string_value(), "9.9.9");
  std::vector<model::FileMount> want = {{version.string(), "/run/accel-dra/driver/version"}};
  EXPECT_EQ(from_file.read_only_mounts, want);
  EXPECT_EQ(explicit_version.read_only_mounts, want);  // containers still see the file
  EXPECT_EQ(from_file.timeslice_control, model::TimeSliceControl::kNone);
  EXPECT_EQ(explicit_version.timeslice_control, model::TimeSliceControl::kNvidiaSmi);
  EXPECT_EQ(explicit_version.timeslice_target,
            explicit_version.attributes.at("uuid").string_value());
  EXPECT_FALSE(mgr.MaybeChanged());

  // A new version is noticed and published.
  ASSERT_TRUE(env->WriteFileAtomic(version, "1.2\n").ok());
  EXPECT_TRUE(mgr.MaybeChanged());
  inv = mgr.Refresh();
  EXPECT_EQ(inv->devices()[0].attributes.at("driverVersion").string_value(), "1.2.0");
  EXPECT_FALSE(mgr.MaybeChanged());

  // Not a version: no driverVersion (the file is still mounted).
  ASSERT_TRUE(env->WriteFileAtomic(version, "custom build\n").ok());
  EXPECT_TRUE(mgr.MaybeChanged());
  inv = mgr.Refresh();
  EXPECT_EQ(inv->devices()[0].attributes.count("driverVersion"), 0u);
  EXPECT_EQ(inv->devices()[0].read_only_mounts, want);

  // Gone: no driverVersion and no mount (a bind of a missing file would fail the container).
  fs::remove(version);
  EXPECT_TRUE(mgr.MaybeChanged());
  inv = mgr.Refresh();
  EXPECT_EQ(inv->devices()[0].attributes.count("driverVersion"), 0u);
  EXPECT_TRUE(inv->devices()[0].read_only_mounts.empty());
  EXPECT_EQ(inv->devices()[1].attributes.at("driverVersion").string_value(), "9.9.9");
  fs::remove_all(dir);
}

TEST(SimulatedTest, WithoutDriverVersionFileNothingChanges) {
  SimulatedBackend sim(Env::Default(), "n", DefaultSimProfile(1));
  auto devs = sim.Discover().value();
  EXPECT_EQ(devs[0].attributes.at("driverVersion").string_value(), "1.0.0");
  EXPECT_TRUE(devs[0].read_only_mounts.empty());
  EXPECT_EQ(devs[0].timeslice_control, model::TimeSliceControl::kNone);
}

}  // namespace
}  // namespace accel_dra::discovery
