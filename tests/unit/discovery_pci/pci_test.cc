#include "accel_dra/discovery/pci.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "../discovery_events/fixture_copy.h"
#include "accel_dra/common/names.h"
#include "accel_dra/slices/slices.h"
#include "log_capture.h"

namespace accel_dra::discovery {
namespace {
namespace fs = std::filesystem;

const fs::path kHosts = fs::path(ACCEL_DRA_SOURCE_DIR) / "tests/fixtures/hosts";

using test_support::LogCapture;

std::vector<model::Device> DiscoverHost(const std::string& name) {
  PciBackend backend(Env::Default(), HostRoot(kHosts / name), PciOptions{kHosts / "pci.ids"});
  auto devs = backend.Discover();
  EXPECT_TRUE(devs.ok()) << devs.status().message();
  return devs.ok() ? *devs : std::vector<model::Device>{};
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TestName(const ::testing::TestParamInfo<std::string>& p) {
  std::string n = p.param;
  for (auto& c : n) {
    if (c == '-') c = '_';
  }
  return n;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, MatchesGolden) {
  LogCapture logs;
  auto devs = DiscoverHost(GetParam());
  std::string got = DevicesToJson(devs).dump(2) + "\n";
  fs::path golden = kHosts / (GetParam() + ".golden.json");
  const char* update = std::getenv("ACCEL_DRA_UPDATE_GOLDENS");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(golden) << got;
    GTEST_SKIP() << "rewrote " << golden;
  }
  ASSERT_TRUE(fs::exists(golden)) << golden << " missing; run with ACCEL_DRA_UPDATE_GOLDENS=1";
  EXPECT_EQ(got, ReadAll(golden)) << "discovery of " << GetParam() << " differs from " << golden
                                  << " (rewrite with ACCEL_DRA_UPDATE_GOLDENS=1 if intended)";
}

INSTANTIATE_TEST_SUITE_P(Pci, GoldenTest,
                         ::testing::Values("h100x8", "mi300x", "intel-gpu", "mixed", "none", "bad"),
                         TestName);

class SanitizeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SanitizeTest, EveryDevicePassesSanitizeUnchanged) {
  for (auto d : DiscoverHost(GetParam())) {
    model::Device before = d;
    auto r = slices::SanitizeDevice(d);
    EXPECT_TRUE(r.keep) << d.name;
    EXPECT_TRUE(r.problems.empty()) << d.name << ": " << r.problems.front();
    EXPECT_EQ(d, before);
  }
}

INSTANTIATE_TEST_SUITE_P(Pci, SanitizeTest,
                         ::testing::Values("h100x8", "mi300x", "intel-gpu", "mixed", "bad"),
                         TestName);

const std::vector<std::string> kH100Buses = {"18", "28", "38", "48", "98", "a8", "b8", "c8"};

TEST(PciDiscoveryTest, H100x8) {
  auto devs = DiscoverHost("h100x8");
  ASSERT_EQ(devs.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    const auto& d = devs[static_cast<size_t>(i)];
    const std::string& bus = kH100Buses[static_cast<size_t>(i)];
    EXPECT_EQ(d.name, "gpu-0000-" + bus + "-00-0");
    EXPECT_EQ(d.identity, (model::DeviceIdentity{"0000:" + bus + ":00.0", ""}));
    const auto& a = d.attributes;
    EXPECT_EQ(a.at("index").int_value(), i);
    EXPECT_EQ(a.at("vendor").string_value(), "nvidia");
    EXPECT_EQ(a.at("vendorID").string_value(), "0x10de");
    EXPECT_EQ(a.at("deviceID").string_value(), "0x2330");
    EXPECT_EQ(a.at("productName").string_value(), "GH100 [H100 SXM5 80GB]");
    EXPECT_EQ(a.at("driverName").string_value(), "nvidia");
    EXPECT_EQ(a.at("driverVersion"), model::AttrValue::Version("550.54.15"));
    EXPECT_EQ(a.count("driverVersionRaw"), 0u);
    EXPECT_EQ(a.count("uuid"), 0u);
    EXPECT_EQ(a.at("numaNode").int_value(), i < 4 ? 0 : 1);
    EXPECT_EQ(a.at("resource.kubernetes.io/pcieRoot").string_value(),
              i < 4 ? "pci0000:00" : "pci0000:80");
    // The standard names carry the same values as ours.
    EXPECT_EQ(a.at("resource.kubernetes.io/numaNode"), a.at("numaNode"));
    EXPECT_EQ(a.at("resource.kubernetes.io/pciBusID"), a.at("pciBusID"));
    EXPECT_EQ(d.device_nodes,
              (std::vector<std::string>{"/dev/nvidia" + std::to_string(i), "/dev/nvidiactl",
                                        "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}));
  }
  EXPECT_EQ(devs[0].attributes.at("pciBusID").string_value(), "0000:18:00.0");
}

// NVIDIA display-class GPUs take TimeSlicing through nvidia-smi (-i <bus ID> until NVML gives the
// UUID); other vendors' devices do not.
TEST(PciDiscoveryTest, TimeSliceControlOnlyForNvidiaGpus) {
  for (const auto& d : DiscoverHost("h100x8")) {
    EXPECT_EQ(d.timeslice_control, model::TimeSliceControl::kNvidiaSmi) << d.name;
    EXPECT_EQ(d.timeslice_target, d.attributes.at("pciBusID").string_value()) << d.name;
  }
  for (const auto& d : DiscoverHost("mi300x")) {
    EXPECT_EQ(d.timeslice_control, model::TimeSliceControl::kNone) << d.name;
    EXPECT_EQ(d.timeslice_target, "") << d.name;
  }
}

TEST(PciDiscoveryTest, Mi300xHasKfdDriNodesAndVram) {
  auto devs = DiscoverHost("mi300x");
  ASSERT_EQ(devs.size(), 2u);
  EXPECT_EQ(devs[0].attributes.at("type").string_value(), "gpu");
  EXPECT_EQ(devs[0].attributes.at("productName").string_value(), "Aqua Vanjaram [Instinct MI300X]");
  EXPECT_EQ(devs[0].capacity.at("memory"), "192Gi");
  EXPECT_EQ(devs[1].device_nodes,
            (std::vector<std::string>{"/dev/dri/card2", "/dev/dri/renderD129", "/dev/kfd"}));
}

TEST(PciDiscoveryTest, MixedIgnoresNicAndNormalisesVersions) {
  auto devs = DiscoverHost("mixed");
  ASSERT_EQ(devs.size(), 3u);
  // PCI address order: Intel iGPU 00:02.0, NVIDIA 01:00.0, AMD 03:00.0.
  EXPECT_EQ(devs[0].attributes.at("vendor").string_value(), "intel");
  EXPECT_EQ(devs[0].attributes.count("driverVersion"), 0u);  // in-tree i915: no module version
  EXPECT_EQ(devs[0].attributes.count("numaNode"), 0u);       // -1
  EXPECT_EQ(devs[0].attributes.count("resource.kubernetes.io/numaNode"), 0u);
  EXPECT_EQ(devs[0].attributes.at("resource.kubernetes.io/pciBusID").string_value(),
            "0000:00:02.0");
  EXPECT_EQ(devs[1].attributes.at("driverVersion"), model::AttrValue::Version("535.104.5"));
  EXPECT_EQ(devs[1].attributes.at("driverVersionRaw"), model::AttrValue::String("535.104.05"));
  EXPECT_EQ(devs[2].attributes.at("driverVersion"), model::AttrValue::Version("6.3.0"));
  EXPECT_EQ(devs[2].attributes.at("driverVersionRaw"), model::AttrValue::String("6.3"));
  // The AMD name is longer than 64 bytes in the fixture pci.ids: cut at a word, no open bracket.
  const auto& pn = devs[2].attributes.at("productName").string_value();
  EXPECT_LE(pn.size(), 64u);
  EXPECT_EQ(pn, "Navi 31 [Radeon Pro W7900 With An Unusually Long Marketing Name]");
}

TEST(PciDiscoveryTest, NoAcceleratorsIsAnEmptyList) { EXPECT_TRUE(DiscoverHost("none").empty()); }

TEST(PciDiscoveryTest, BadInputIsLoggedOnceAndDevicesKeepWhatIsKnown) {
  LogCapture logs;
  PciBackend backend(Env::Default(), HostRoot(kHosts / "bad"), PciOptions{kHosts / "pci.ids"});
  auto first = backend.Discover();
  auto second = backend.Discover();
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*first, *second);
  const auto& devs = *first;
  ASSERT_EQ(devs.size(), 4u) << DevicesToJson(devs).dump(2);

  // Missing class, malformed numa_node, no Device Minor: published without those.
  const auto& g0 = devs[0];
  EXPECT_EQ(g0.name, "gpu-0000-01-00-0");
  EXPECT_EQ(g0.attributes.at("pciBusID").string_value(), "0000:01:00.0");
  EXPECT_EQ(g0.attributes.count("numaNode"), 0u);
  EXPECT_EQ(g0.attributes.count("resource.kubernetes.io/numaNode"), 0u);  // malformed
  EXPECT_EQ(g0.attributes.at("deviceID").string_value(), "0x2330");
  EXPECT_EQ(g0.device_nodes, (std::vector<std::string>{"/dev/nvidiactl"}));
  // Class is a directory (unreadable), device id is garbage.
  const auto& g1 = devs[1];
  EXPECT_EQ(g1.name, "gpu-0000-02-00-0");
  EXPECT_EQ(g1.attributes.count("deviceID"), 0u);
  EXPECT_EQ(g1.attributes.at("productName").string_value(), "NVIDIA device");
  EXPECT_EQ(g1.attributes.at("numaNode").int_value(), 1);
  // Gaudi2: "v1.2-beta" normalised, raw kept.
  const auto& a0 = devs[2];
  EXPECT_EQ(a0.name, "accelerator-0000-03-00-0");
  EXPECT_EQ(a0.attributes.at("index").int_value(), 0);
  EXPECT_EQ(a0.attributes.at("vendor").string_value(), "habana");
  EXPECT_EQ(a0.attributes.at("driverVersion"), model::AttrValue::Version("1.2.0-beta"));
  EXPECT_EQ(a0.attributes.at("driverVersionRaw"), model::AttrValue::String("v1.2-beta"));
  EXPECT_EQ(a0.device_nodes, (std::vector<std::string>{"/dev/accel/accel0"}));
  // Qualcomm: version can't be semver → only the raw string; not in pci.ids → fallback name.
  const auto& a1 = devs[3];
  EXPECT_EQ(a1.name, "accelerator-0000-04-00-0");
  EXPECT_EQ(a1.attributes.at("index").int_value(), 1);
  EXPECT_EQ(a1.attributes.count("driverVersion"), 0u);
  EXPECT_EQ(a1.attributes.at("driverVersionRaw"),
            model::AttrValue::String("custom build (unreleased)"));
  EXPECT_EQ(a1.attributes.at("productName").string_value(), "Qualcomm device 0xa100");

  // Each problem logged exactly once over two discoveries.
  std::string t = logs.text();
  EXPECT_EQ(logs.Count("unknown vendor 0x1e99"), 1) << t;
  EXPECT_EQ(logs.Count("malformed numa_node \"banana\""), 1) << t;
  EXPECT_EQ(logs.Count("0000:01:00.0: cannot read /sys/devices/pci0000:00/0000:00:01.0/"
                       "0000:01:00.0/class"),
            1)
      << t;
  EXPECT_EQ(logs.Count("0000:02:00.0: cannot read /sys/devices/pci0000:00/0000:00:02.0/"
                       "0000:02:00.0/class"),
            1)
      << t;
  EXPECT_EQ(logs.Count("malformed device id \"0xzzzz\""), 1) << t;
  EXPECT_EQ(logs.Count("cannot be read as a semantic version"), 1) << t;
  EXPECT_EQ(logs.Count("malformed vendor \"not-a-number\""), 1) << t;
  EXPECT_EQ(logs.Count("no \"Device Minor\""), 1) << t;
  EXPECT_EQ(logs.Count("README: not a PCI address"), 1) << t;
}

TEST(PciDiscoveryTest, MissingIdsFileFallsBackToNumericNames) {
  LogCapture logs;
  PciBackend backend(Env::Default(), HostRoot(kHosts / "h100x8"),
                     PciOptions{kHosts / "no-such-pci.ids"});
  auto devs = backend.Discover();
  ASSERT_TRUE(devs.ok());
  ASSERT_FALSE(devs->empty());
  EXPECT_EQ(devs->front().attributes.at("productName").string_value(), "NVIDIA device 0x2330");
  backend.Discover().value();
  EXPECT_EQ(logs.Count("no-such-pci.ids not found"), 1) << logs.text();
}

TEST(PciDiscoveryTest, MalformedIdsFileFallsBackWithoutDying) {
  LogCapture logs;
  fs::path dir = fs::path(::testing::TempDir()) / ("pci-ids-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::path ids = dir / "pci.ids";
  std::ofstream(ids) << "10de  NVIDIA Corporation\n\t\t\t\tbroken indentation\nzzzz garbage\n";
  PciBackend backend(Env::Default(), HostRoot(kHosts / "h100x8"), PciOptions{ids});
  auto devs = backend.Discover();
  ASSERT_TRUE(devs.ok());
  EXPECT_EQ(devs->front().attributes.at("productName").string_value(), "NVIDIA device 0x2330");
  backend.Discover().value();
  EXPECT_EQ(logs.Count("could not be loaded"), 1) << logs.text();
  fs::remove_all(dir);
}

TEST(PciDiscoveryTest, MissingSysfsIsAnError) {
  PciBackend backend(Env::Default(), HostRoot(kHosts / "does-not-exist"),
                     PciOptions{kHosts / "pci.ids"});
  auto devs = backend.Discover();
  ASSERT_FALSE(devs.ok());
  EXPECT_NE(devs.status().message().find("/sys/bus/pci/devices"), std::string::npos);
}

// Names come from the PCI address alone: a GPU that falls off the bus (or is missing after a
// reboot) renames no other device, and it gets its name back when it returns. The index
// attribute stays the bus order.
TEST(PciDiscoveryTest, NamesAreStableWhenAGpuIsRemovedAndReAdded) {
  testing::FixtureCopy host("h100x8");
  PciBackend backend(Env::Default(), HostRoot(host.root()), PciOptions{kHosts / "pci.ids"});
  auto names = [&] {
    std::map<std::string, std::string> out;  // bus ID → name
    auto devs = backend.Discover();
    EXPECT_TRUE(devs.ok());
    for (const auto& d : devs.ok() ? *devs : std::vector<model::Device>{}) {
      out[d.identity.pci_bus_id] = d.name;
    }
    return out;
  };
  auto before = names();
  ASSERT_EQ(before.size(), 8u);
  host.RemoveDevice("0000:28:00.0");
  auto without = names();
  ASSERT_EQ(without.size(), 7u);
  for (const auto& [bus, name] : without) EXPECT_EQ(name, before[bus]) << bus;
  EXPECT_EQ(without.count("0000:28:00.0"), 0u);
  auto devs = backend.Discover().value();
  EXPECT_EQ(devs[1].name, "gpu-0000-38-00-0");
  EXPECT_EQ(devs[1].attributes.at("index").int_value(), 1);  // bus order, as before
  host.ReAddDevice("0000:28:00.0");
  EXPECT_EQ(names(), before);
}

// Domains above 0xffff (VMD, some hypervisors) have 5 to 8 hex digits in sysfs; the name keeps
// them whole and stays a DNS label; PCI address order is numeric.
TEST(PciDiscoveryTest, DomainsAboveFfffAreNamedAndOrdered) {
  testing::FixtureCopy host("h100x8");
  host.AddDeviceLike("0000:c8:00.0", "10000:01:00.0");
  host.AddDeviceLike("0000:c8:00.0", "fffffff0:e1:1f.7");
  PciBackend backend(Env::Default(), HostRoot(host.root()), PciOptions{kHosts / "pci.ids"});
  auto devs = backend.Discover().value();
  ASSERT_EQ(devs.size(), 10u);
  EXPECT_EQ(devs[8].name, "gpu-10000-01-00-0");
  EXPECT_EQ(devs[8].identity.pci_bus_id, "10000:01:00.0");
  EXPECT_EQ(devs[8].attributes.at("pciBusID").string_value(), "10000:01:00.0");
  EXPECT_EQ(devs[8].attributes.at("resource.kubernetes.io/pciBusID").string_value(),
            "10000:01:00.0");
  EXPECT_EQ(devs[8].attributes.at("index").int_value(), 8);
  EXPECT_EQ(devs[9].name, "gpu-fffffff0-e1-1f-7");
  for (const auto& d : devs) EXPECT_TRUE(IsDnsLabel(d.name)) << d.name;
}

TEST(PciDeviceNameTest, TheRule) {
  EXPECT_EQ(PciDeviceName("gpu", "0000:3b:00.0"), "gpu-0000-3b-00-0");
  EXPECT_EQ(PciDeviceName("accelerator", "ffffffff:ff:1f.7"), "accelerator-ffffffff-ff-1f-7");
  EXPECT_LE(PciDeviceName("accelerator", "ffffffff:ff:1f.7").size(), 63u);
  EXPECT_TRUE(IsDnsLabel(PciDeviceName("accelerator", "ffffffff:ff:1f.7")));
  EXPECT_EQ(NormalizePciBusId("0010000:01:00.0"), "10000:01:00.0");
  EXPECT_EQ(NormalizePciBusId("000000000:01:00.0"), std::nullopt);  // 9 domain digits
}

TEST(PciTruncateTest, CutsCleanly) {
  EXPECT_EQ(model::TruncateAttributeString("short"), "short");
  std::string exact(64, 'a');
  EXPECT_EQ(model::TruncateAttributeString(exact), exact);
  EXPECT_EQ(model::TruncateAttributeString(std::string(80, 'b')), std::string(64, 'b'));
  // A multi-byte character across the limit is not split.
  std::string s = std::string(63, 'c') + "\xc3\xa9" + "tail";
  EXPECT_EQ(model::TruncateAttributeString(s), std::string(63, 'c'));
  EXPECT_EQ(model::TruncateAttributeString(
                "Ponte Vecchio XT (2 Tile) [Data Center GPU Max 1550 with extra words]"),
            "Ponte Vecchio XT (2 Tile) [Data Center GPU Max 1550 with extra]");
  EXPECT_EQ(model::TruncateAttributeString("(" + std::string(70, 'x')),
            "(" + std::string(62, 'x') + ")");
}

// Found by tests/fuzz/pci_sysfs_fuzz: a driver module link whose name is not UTF-8 became a
// driverName the slice body could not carry (the JSON dump threw).
TEST(AttrValueTest, StringsAreAlwaysUtf8AndFit) {
  EXPECT_EQ(model::AttrValue::String("amd\xd1\x88gpu").string_value(), "amd\xd1\x88gpu");
  EXPECT_EQ(model::AttrValue::String("amd\x90gpu").string_value(), "amd\xef\xbf\xbdgpu");
  auto long_bad = model::AttrValue::String(std::string(60, 'a') + "\xff\xff\xff");
  EXPECT_LE(long_bad.string_value().size(), model::kMaxAttributeValueLength);
  EXPECT_NO_THROW((void)long_bad.ToJson().dump());
}

}  // namespace
}  // namespace accel_dra::discovery
