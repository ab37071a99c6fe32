#include "accel_dra/discovery/nvml.h"

#include <dlfcn.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>

#include "accel_dra/discovery/node_runtime.h"
#include "accel_dra/discovery/pci.h"
#include "log_capture.h"

namespace accel_dra::discovery {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A DGX H100: 8 × H100 SXM5 80GB, driver 550.54.15, CUDA 12.4.
constexpr const char* kBusIds[8] = {"18", "2a", "3a", "5d", "9a", "ab", "ba", "db"};
constexpr uint64_t kH100Memory = 85520809984ULL;  // 81559 MiB, what NVML reports
std::string Uuid(int i) {
  return "GPU-8c5a4d3e-1f2b-4c6d-9e8f-0a1b2c3d4e" + std::to_string(10 + i);
}

std::string H100Config(const std::string& extra = "", const std::string& driver = "550.54.15") {
  std::string c = "# 8 x H100\ndriver " + driver + "\ncuda 12040\n" + extra;
  for (int i = 0; i < 8; ++i) {
    std::string bus = kBusIds[i];
    for (auto& ch : bus) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    c += "gpu " + std::to_string(i) + " " + Uuid(i) + " 00000000:" + bus + ":00.0 " +
         std::to_string(kH100Memory) + " 9 0 9 NVIDIA H100 80GB HBM3\n";
  }
  return c;
}

class NvmlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("nvml_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    unsetenv("MOCK_NVML_CONFIG");
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void UseConfig(const std::string& content) {
    fs::path p = dir_ / "mock_nvml.conf";
    std::ofstream(p) << content;
    setenv("MOCK_NVML_CONFIG", p.c_str(), 1);
  }
  // The mock's nvmlInit_v2/nvmlShutdown balance (the library must be loaded).
  static int InitRefcount(const char* path) {
    void* h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (h == nullptr) return -1;
    auto fn = reinterpret_cast<int (*)()>(dlsym(h, "mock_nvml_init_refcount"));
    int v = fn != nullptr ? fn() : -2;
    dlclose(h);
    return v;
  }
  fs::path dir_;
};

// Devices shaped like PCI discovery output (before NVML).
std::vector<model::Device> PciDevices() {
  std::vector<model::Device> out;
  for (int i = 0; i < 8; ++i) {
    model::Device d;
    d.name = "gpu-" + std::to_string(i);
    d.attributes.emplace("type", model::AttrValue::String("gpu"));
    d.attributes.emplace("vendor", model::AttrValue::String("nvidia"));
    d.attributes.emplace("vendorID", model::AttrValue::String("0x10de"));
    d.attributes.emplace("deviceID", model::AttrValue::String("0x2330"));
    d.attributes.emplace("productName", model::AttrValue::String("GH100 [H100 SXM5 80GB]"));
    d.attributes.emplace("index", model::AttrValue::Int(i));
    d.attributes.emplace("pciBusID",
                         model::AttrValue::String("0000:" + std::string(kBusIds[i]) + ":00.0"));
    d.attributes.emplace("numaNode", model::AttrValue::Int(i / 4));
    d.attributes.emplace("driverName", model::AttrValue::String("nvidia"));
    d.device_nodes.push_back("/dev/nvidia" + std::to_string(i));
    out.push_back(std::move(d));
  }
  return out;
}

TEST_F(NvmlTest, NvmlListsEightH100sWithExactFields) {
  UseConfig(H100Config());
  auto lib = NvmlLibrary::Open(MOCK_NVML_PATH);
  ASSERT_TRUE(lib.ok()) << lib.status().ToString();
  EXPECT_TRUE((*lib)->has_architecture());
  auto info = (*lib)->Query();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->driver_version, "550.54.15");
  EXPECT_EQ(info->cuda_driver_version, 12040);
  EXPECT_TRUE(info->warnings.empty());
  ASSERT_EQ(info->gpus.size(), 8u);
  for (unsigned i = 0; i < 8; ++i) {
    NvmlGpu want;
    want.index = i;
    want.uuid = Uuid(static_cast<int>(i));
    want.name = "NVIDIA H100 80GB HBM3";
    want.bus_id = "0000:" + std::string(kBusIds[i]) + ":00.0";
    want.memory_total = kH100Memory;
    want.cc_major = 9;
    want.cc_minor = 0;
    want.architecture = 9u;
    EXPECT_EQ(info->gpus[i], want) << "GPU " << i;
  }
  // Query() shuts NVML down again.
  EXPECT_EQ(InitRefcount(MOCK_NVML_PATH), 0);

  // The individual calls, with an explicit Init/Shutdown.
  ASSERT_TRUE((*lib)->Init().ok());
  EXPECT_EQ((*lib)->DriverVersion().value(), "550.54.15");
  EXPECT_EQ((*lib)->CudaDriverVersion().value(), 12040);
  EXPECT_EQ((*lib)->ListGpus().value().size(), 8u);
  EXPECT_EQ(InitRefcount(MOCK_NVML_PATH), 1);
  EXPECT_TRUE((*lib)->Shutdown().ok());
  EXPECT_EQ(InitRefcount(MOCK_NVML_PATH), 0);
  // A call after shutdown is an error value with NVML's own words.
  auto late = (*lib)->DriverVersion();
  ASSERT_FALSE(late.ok());
  EXPECT_THAT(late.status().message(),
              HasSubstr("nvmlSystemGetDriverVersion: Uninitialized (NVML error 1)"));
}

TEST_F(NvmlTest, NvmlEnrichesPciDevicesByBusId) {
  UseConfig(H100Config());
  auto lib = NvmlLibrary::Open(MOCK_NVML_PATH);
  ASSERT_TRUE(lib.ok()) << lib.status().ToString();
  auto info = (*lib)->Query();
  ASSERT_TRUE(info.ok()) << info.status().ToString();

  std::vector<model::Device> devices = PciDevices();
  // A device NVML doesn't know (an AMD GPU) and an NVIDIA one at a bus NVML doesn't report
  // (e.g. bound to vfio-pci) are left as they are; one uses the upper-case/8-digit form.
  model::Device amd;
  amd.name = "gpu-amd-0";
  amd.attributes.emplace("vendor", model::AttrValue::String("amd"));
  amd.attributes.emplace("pciBusID", model::AttrValue::String("0000:c1:00.0"));
  amd.capacity.emplace("memory", "192Gi");
  model::Device vfio;
  vfio.name = "gpu-vfio-0";
  vfio.attributes.emplace("pciBusID", model::AttrValue::String("0000:dc:00.0"));
  model::Device no_bus;
  no_bus.name = "nobus";
  devices.push_back(amd);
  devices.push_back(vfio);
  devices.push_back(no_bus);
  devices[7].attributes.insert_or_assign("pciBusID", model::AttrValue::String("00000000:DB:00.0"));

  EXPECT_EQ(EnrichWithNvml(devices, *info), 8u);
  for (int i = 0; i < 8; ++i) {
    const model::Device& d = devices[static_cast<size_t>(i)];
    SCOPED_TRACE(d.name);
    const auto& a = d.attributes;
    EXPECT_EQ(a.at("uuid"), model::AttrValue::String(Uuid(i)));
    EXPECT_EQ(a.at("productName"), model::AttrValue::String("NVIDIA H100 80GB HBM3"));
    EXPECT_EQ(a.at("driverVersion"), model::AttrValue::Version("550.54.15"));
    EXPECT_EQ(a.count("driverVersionRaw"), 0u);
    EXPECT_EQ(a.at("cudaDriverVersion"), model::AttrValue::Version("12.4.0"));
    // The runtime API version under the name every vendor uses (KAR-0001), from the mock's
    // nvmlSystemGetCudaDriverVersion_v2 (12040).
    EXPECT_EQ(a.at("runtimeVersion"), model::AttrValue::Version("12.4.0"));
    EXPECT_EQ(a.at("computeCapability"), model::AttrValue::Version("9.0.0"));
    EXPECT_EQ(a.at("architecture"), model::AttrValue::String("Hopper"));
    EXPECT_EQ(d.capacity.at("memory"), "81559Mi");
    // PCI facts stay.
    EXPECT_EQ(a.at("index"), model::AttrValue::Int(i));
    EXPECT_EQ(a.at("numaNode"), model::AttrValue::Int(i / 4));
    EXPECT_EQ(a.at("driverName"), model::AttrValue::String("nvidia"));
    EXPECT_EQ(a.at("vendorID"), model::AttrValue::String("0x10de"));
    EXPECT_EQ(d.device_nodes, std::vector<std::string>{"/dev/nvidia" + std::to_string(i)});
    EXPECT_EQ(a.size(), 15u);
  }
  EXPECT_EQ(devices[8], amd);
  EXPECT_EQ(devices[9], vfio);
  EXPECT_EQ(devices[10], no_bus);

  // nvidia-smi -i gets the UUID once NVML knows it (only devices with that control).
  std::vector<model::Device> controlled = PciDevices();
  controlled[0].timeslice_control = model::TimeSliceControl::kNvidiaSmi;
  controlled[0].timeslice_target = "0000:18:00.0";
  EnrichWithNvml(controlled, *info);
  EXPECT_EQ(controlled[0].timeslice_target, Uuid(0));
  EXPECT_EQ(controlled[1].timeslice_target, "");

  // Idempotent: enriching again changes nothing.
  auto again = devices;
  EnrichWithNvml(again, *info);
  EXPECT_EQ(again, devices);

  // The resource.kubernetes.io/pciBusID spelling matches too.
  model::Device std_attr;
  std_attr.name = "gpu-x";
  std_attr.attributes.emplace("resource.kubernetes.io/pciBusID",
                              model::AttrValue::String("0000:3a:00.0"));
  std::vector<model::Device> one{std_attr};
  EXPECT_EQ(EnrichWithNvml(one, *info), 1u);
  EXPECT_EQ(one[0].attributes.at("uuid"), model::AttrValue::String(Uuid(2)));
}

// The most a device publishes: a PCI GPU with every optional sysfs file (h100x8), NVML facts with
// a driver version that needs its raw form, and all five node-level attributes. It stays within
// the apiserver's 32 attributes + capacities, standard attributes included, nothing left out.
TEST_F(NvmlTest, AFullyDescribedGpuStaysWithinTheAttributeLimit) {
  UseConfig(H100Config("", "535.104.05"));
  auto lib = NvmlLibrary::Open(MOCK_NVML_PATH);
  ASSERT_TRUE(lib.ok()) << lib.status().ToString();
  auto info = (*lib)->Query();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  const fs::path hosts = fs::path(ACCEL_DRA_SOURCE_DIR) / "tests/fixtures/hosts";
  PciBackend pci(Env::Default(), HostRoot(hosts / "h100x8"), PciOptions{hosts / "pci.ids"});
  auto devices = pci.Discover().value();
  ASSERT_FALSE(devices.empty());
  ASSERT_EQ(devices[0].identity.pci_bus_id, "0000:18:00.0");  // the bus NVML reports first
  EXPECT_GE(EnrichWithNvml(devices, *info), 1u);
  nlohmann::json node = {
      {"metadata", {{"name", "n1"}}},
      {"status", {{"nodeInfo", {{"containerRuntimeVersion", "cri-o://1.31.02"}}}}}};
  std::vector<std::string> left_out;
  model::Inventory out =
      WithNodeAttributes(model::Inventory({devices[0]}),
                         NodeAttributesFromNode(node, ContainerdConfig{}), 32, &left_out);
  EXPECT_TRUE(left_out.empty());
  const model::Device& d = out.devices()[0];
  const auto& a = d.attributes;
  // PCI 16 (with the standard pciBusID, pcieRoot, numaNode) + NVML 5 (runtimeVersion too) + node
  // 5, and memory: 27 of 32.
  EXPECT_EQ(a.size(), 26u);
  EXPECT_EQ(d.capacity.size(), 1u);
  EXPECT_EQ(a.at("uuid"), model::AttrValue::String(Uuid(0)));
  EXPECT_EQ(a.at("driverVersionRaw"), model::AttrValue::String("535.104.05"));
  EXPECT_EQ(a.at("resource.kubernetes.io/pciBusID"), model::AttrValue::String("0000:18:00.0"));
  EXPECT_EQ(a.at("resource.kubernetes.io/numaNode"), model::AttrValue::Int(0));
  EXPECT_EQ(a.at("resource.kubernetes.io/pcieRoot"), model::AttrValue::String("pci0000:00"));
}

TEST_F(NvmlTest, NvmlInitFailureIsFailedPreconditionAndProbeWarnsOnce) {
  UseConfig(H100Config("init_error 9\n"));
  auto lib = NvmlLibrary::Open(MOCK_NVML_PATH);
  ASSERT_TRUE(lib.ok()) << lib.status().ToString();
  auto info = (*lib)->Query();
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(info.status().message(), HasSubstr("nvmlInit_v2 failed: Driver Not Loaded"));
  EXPECT_THAT(info.status().message(), HasSubstr(MOCK_NVML_PATH));

  std::vector<std::string> warnings;
  std::vector<std::string> infos;
  NvmlProbe probe(
      MOCK_NVML_PATH, [&](const std::string& m) { warnings.push_back(m); },
      [&](const std::string& m) { infos.push_back(m); });
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(probe.Probe().has_value());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(probe.fallback_warnings(), 1);
  EXPECT_EQ(probe.last_status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(warnings[0], HasSubstr("nvmlInit_v2 failed: Driver Not Loaded (NVML error 9)"));
  EXPECT_THAT(warnings[0], HasSubstr("; using PCI/sysfs data only"));

  // The driver comes back: NVML is used again, said once; a new failure is reported again, once.
  UseConfig(H100Config());
  auto ok = probe.Probe();
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->gpus.size(), 8u);
  EXPECT_TRUE(probe.last_status().ok());
  EXPECT_EQ(infos.size(), 1u);
  EXPECT_TRUE(probe.Probe().has_value());
  EXPECT_EQ(infos.size(), 1u);
  UseConfig(H100Config("init_error 18\n"));
  EXPECT_FALSE(probe.Probe().has_value());
  EXPECT_FALSE(probe.Probe().has_value());
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_THAT(warnings[1], HasSubstr("NVML/RM version mismatch"));
}

class FixedBackend : public Backend {
 public:
  explicit FixedBackend(std::vector<model::Device> d) : devices_(std::move(d)) {}
  std::string Name() const override { return "pci"; }
  Expected<std::vector<model::Device>> Discover() override { return devices_; }

 private:
  std::vector<model::Device> devices_;
};

TEST_F(NvmlTest, NvmlEnrichedBackendFallsBackToPciData) {
  UseConfig(H100Config("init_error 9\n"));
  NvmlEnrichedBackend backend(std::make_unique<FixedBackend>(PciDevices()), MOCK_NVML_PATH);
  EXPECT_EQ(backend.Name(), "pci+nvml");
  auto plain = backend.Discover();
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, PciDevices());
  EXPECT_EQ(backend.probe().fallback_warnings(), 1);
  UseConfig(H100Config());
  auto rich = backend.Discover();
  ASSERT_TRUE(rich.ok());
  EXPECT_EQ(rich->at(0).attributes.at("uuid"), model::AttrValue::String(Uuid(0)));
  EXPECT_EQ(rich->at(0).capacity.at("memory"), "81559Mi");
}

// Devices the test changes between discoveries (the PCI side).
class SettableBackend : public Backend {
 public:
  explicit SettableBackend(std::vector<model::Device> d) : devices_(std::move(d)) {}
  std::string Name() const override { return "pci"; }
  Expected<std::vector<model::Device>> Discover() override { return devices_; }
  std::vector<model::Device> devices_;
};

std::string Attr(const model::Device& d, const std::string& name) {
  auto it = d.attributes.find(name);
  return it == d.attributes.end() ? "" : it->second.string_value();
}

// One failed NVML read keeps the last good enrichment (issue 11, point 3): the attributes and
// the UUID identity stay; what NVML reports now (last_info) still shows the failure for health.
TEST_F(NvmlTest, NvmlEnrichedBackendKeepsTheLastGoodFactsWhenNvmlFails) {
  test_support::LogCapture logs;
  UseConfig(H100Config());
  NvmlEnrichedBackend backend(std::make_unique<FixedBackend>(PciDevices()), MOCK_NVML_PATH);
  auto good = backend.Discover();
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->at(3).identity.uuid, Uuid(3));
  EXPECT_EQ(Attr(good->at(3), "uuid"), Uuid(3));

  UseConfig(H100Config("init_error 9\n"));
  for (int i = 0; i < 2; ++i) {
    auto kept = backend.Discover();
    ASSERT_TRUE(kept.ok());
    EXPECT_EQ(*kept, *good) << "NVML's attributes, capacity and identity are kept";
    EXPECT_FALSE(backend.last_info().has_value());
  }

  // One GPU left out (no handle) and one field unreadable: their last facts stay too.
  UseConfig(H100Config("fail nvmlDeviceGetHandleByIndex_v2 15 4\nfail nvmlDeviceGetUUID 3 2\n"));
  auto partial = backend.Discover();
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(*partial, *good);
  ASSERT_TRUE(backend.last_info().has_value());
  EXPECT_EQ(backend.last_info()->gpus.size(), 7u) << "health still sees GPU 4 missing";

  // NVML answers with new facts: they are current.
  UseConfig(H100Config("", "555.42.2"));
  auto fresh = backend.Discover();
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->at(0).attributes.at("driverVersion"), model::AttrValue::Version("555.42.2"));
  EXPECT_EQ(logs.Count("keeping the NVML facts of 8 GPUs from its last answer"), 1) << logs.text();
  EXPECT_EQ(logs.Count("NVML answers again"), 1) << logs.text();
}

// A GPU that answers with another UUID is another GPU: its facts replace the old ones whole; a
// PCI device that left is forgotten, so what appears later at its address starts fresh.
TEST_F(NvmlTest, NvmlEnrichedBackendForgetsAnotherGpusFacts) {
  UseConfig(H100Config());
  auto pci = std::make_unique<SettableBackend>(PciDevices());
  SettableBackend* p = pci.get();
  NvmlEnrichedBackend backend(std::move(pci), MOCK_NVML_PATH);
  ASSERT_TRUE(backend.Discover().ok());

  std::string other = H100Config();
  other.replace(other.find(Uuid(1)), Uuid(1).size(), "GPU-ffffffff-0000-0000-0000-000000000001");
  UseConfig(other + "fail nvmlDeviceGetName 3 1\n");
  auto swapped = backend.Discover();
  ASSERT_TRUE(swapped.ok());
  EXPECT_EQ(swapped->at(1).identity.uuid, "GPU-ffffffff-0000-0000-0000-000000000001");
  EXPECT_EQ(Attr(swapped->at(1), "productName"), "GH100 [H100 SXM5 80GB]")
      << "the old GPU's NVML name is not carried over to another GPU";

  auto devices = PciDevices();
  devices.erase(devices.begin() + 2);  // GPU 2 falls off the bus
  p->devices_ = devices;
  ASSERT_TRUE(backend.Discover().ok());
  UseConfig(H100Config("init_error 9\n"));
  p->devices_ = PciDevices();  // something is back at its address while NVML fails
  auto back = backend.Discover();
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->at(2), PciDevices()[2]) << "no facts of the GPU that left";
  EXPECT_EQ(back->at(3).identity.uuid, Uuid(3));
}

TEST_F(NvmlTest, NvmlMissingLibraryIsNotFoundWithThePath) {
  const std::string path = (dir_ / "no-such-dir" / "libnvidia-ml.so.1").string();
  auto lib = NvmlLibrary::Open(path);
  ASSERT_FALSE(lib.ok());
  EXPECT_EQ(lib.status().code(), Code::kNotFound);
  EXPECT_THAT(lib.status().message(), HasSubstr("NVML not available (" + path));
  EXPECT_THAT(lib.status().message(), HasSubstr("cannot open"));

  std::vector<std::string> warnings;
  NvmlProbe probe(path, [&](const std::string& m) { warnings.push_back(m); });
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(probe.Probe().has_value());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("NVML not available (" + path + ": cannot open"));
  EXPECT_THAT(warnings[0], ::testing::EndsWith("); using PCI/sysfs data only"));
  EXPECT_EQ(probe.last_status().code(), Code::kNotFound);

  // A file that is not a shared library is not found either (with dlerror's reason).
  fs::path bogus = dir_ / "libnvidia-ml.so.1";
  std::ofstream(bogus) << "not an ELF file";
  auto bad = NvmlLibrary::Open(bogus.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kNotFound);
  EXPECT_THAT(bad.status().message(), HasSubstr(bogus.string()));
}

TEST_F(NvmlTest, NvmlLibraryWithoutRequiredSymbolsIsFailedPrecondition) {
  // The C library is a shared object, but not NVML.
  auto lib = NvmlLibrary::Open("libc.so.6");
  ASSERT_FALSE(lib.ok());
  EXPECT_EQ(lib.status().code(), Code::kFailedPrecondition);
  EXPECT_THAT(lib.status().message(), HasSubstr("nvmlInit_v2"));
}

TEST_F(NvmlTest, NvmlMissingOptionalSymbolSkipsTheAttribute) {
  UseConfig(H100Config());
  auto lib = NvmlLibrary::Open(MOCK_NVML_NOARCH_PATH);
  ASSERT_TRUE(lib.ok()) << lib.status().ToString();
  EXPECT_FALSE((*lib)->has_architecture());
  auto info = (*lib)->Query();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_TRUE(info->warnings.empty());
  ASSERT_EQ(info->gpus.size(), 8u);
  for (const auto& g : info->gpus) {
    EXPECT_FALSE(g.architecture.has_value());
    EXPECT_EQ(g.cc_major, 9);
  }
  auto devices = PciDevices();
  EXPECT_EQ(EnrichWithNvml(devices, *info), 8u);
  EXPECT_EQ(devices[0].attributes.count("architecture"), 0u);
  EXPECT_EQ(devices[0].attributes.at("computeCapability"), model::AttrValue::Version("9.0.0"));
  EXPECT_EQ(devices[0].attributes.at("uuid"), model::AttrValue::String(Uuid(0)));
}

TEST_F(NvmlTest, NvmlPerCallErrorsAreValuesAndPartialDataIsKept) {
  // GPU 2's UUID is unreadable, GPU 5's PCI info too (it is left out), architecture is "not
  // supported" everywhere.
  UseConfig(
      H100Config("fail nvmlDeviceGetUUID 3 2\nfail nvmlDeviceGetPciInfo_v3 15 5\n"
                 "fail nvmlDeviceGetArchitecture 3\n"));
  auto lib = NvmlLibrary::Open(MOCK_NVML_PATH);
  ASSERT_TRUE(lib.ok());
  auto info = (*lib)->Query();
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  ASSERT_EQ(info->gpus.size(), 7u);
  EXPECT_EQ(info->gpus[2].uuid, "");
  EXPECT_EQ(info->gpus[2].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(info->gpus[5].index, 6u);
  EXPECT_FALSE(info->gpus[0].architecture.has_value());
  EXPECT_THAT(info->warnings,
              ::testing::Contains("GPU 2 (0000:3a:00.0): nvmlDeviceGetUUID: Not Supported (NVML "
                                  "error 3)"));
  EXPECT_THAT(
      info->warnings,
      ::testing::Contains("GPU 5 skipped: nvmlDeviceGetPciInfo_v3: GPU is lost (NVML error 15)"));

  auto devices = PciDevices();
  devices[2].attributes.insert_or_assign("uuid", model::AttrValue::String("from-elsewhere"));
  EXPECT_EQ(EnrichWithNvml(devices, *info), 7u);
  EXPECT_EQ(devices[2].attributes.at("uuid"), model::AttrValue::String("from-elsewhere"));
  EXPECT_EQ(devices[5].attributes.count("uuid"), 0u);
  EXPECT_EQ(devices[5].attributes.at("productName"),
            model::AttrValue::String("GH100 [H100 SXM5 80GB]"));

  // Warnings are logged once per distinct text across probes.
  std::vector<std::string> warnings;
  NvmlProbe probe(MOCK_NVML_PATH, [&](const std::string& m) { warnings.push_back(m); });
  ASSERT_TRUE(probe.Probe().has_value());
  ASSERT_TRUE(probe.Probe().has_value());
  EXPECT_EQ(warnings.size(), info->warnings.size());
  EXPECT_EQ(probe.fallback_warnings(), 0);

  // A failure that stops the query: an error value, and NVML is shut down again.
  UseConfig(H100Config("fail nvmlDeviceGetCount_v2 999\n"));
  auto failed = (*lib)->Query();
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(failed.status().message(),
              HasSubstr("nvmlDeviceGetCount_v2: Unknown Error (NVML error 999)"));
  EXPECT_EQ(InitRefcount(MOCK_NVML_PATH), 0);
}

TEST_F(NvmlTest, NvmlNonSemverDriverVersions) {
  UseConfig(H100Config("", "535.104.05"));
  auto lib = NvmlLibrary::Open(MOCK_NVML_PATH);
  ASSERT_TRUE(lib.ok());
  auto info = (*lib)->Query();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->driver_version, "535.104.05");
  auto devices = PciDevices();
  EnrichWithNvml(devices, *info);
  EXPECT_EQ(devices[0].attributes.at("driverVersion"), model::AttrValue::Version("535.104.5"));
  EXPECT_EQ(devices[0].attributes.at("driverVersionRaw"), model::AttrValue::String("535.104.05"));

  // Not a version at all: the raw string only; a version PCI/sysfs found stays.
  NvmlInfo garbage = *info;
  garbage.driver_version = "unknown (open kernel module)";
  devices = PciDevices();
  devices[0].attributes.emplace("driverVersion", model::AttrValue::Version("535.104.5"));
  EnrichWithNvml(devices, garbage);
  EXPECT_EQ(devices[0].attributes.at("driverVersion"), model::AttrValue::Version("535.104.5"));
  EXPECT_EQ(devices[0].attributes.at("driverVersionRaw"),
            model::AttrValue::String("unknown (open kernel module)"));
  EXPECT_EQ(devices[1].attributes.count("driverVersion"), 0u);
}

TEST(NvmlHelpersTest, CudaVersionsBusIdsAndArchitectures) {
  EXPECT_EQ(CudaVersionToSemver(12040), "12.4.0");
  EXPECT_EQ(CudaVersionToSemver(11080), "11.8.0");
  EXPECT_EQ(CudaVersionToSemver(13000), "13.0.0");
  EXPECT_EQ(CudaVersionToSemver(0), std::nullopt);
  EXPECT_EQ(CudaVersionToSemver(-1), std::nullopt);

  EXPECT_EQ(NormalizePciBusId("00000000:3B:00.0"), "0000:3b:00.0");
  EXPECT_EQ(NormalizePciBusId("0000:3b:00.0"), "0000:3b:00.0");
  EXPECT_EQ(NormalizePciBusId("3b:00.1"), "0000:3b:00.1");
  EXPECT_EQ(NormalizePciBusId("00010000:01:1F.7"), "10000:01:1f.7");
  EXPECT_EQ(NormalizePciBusId("0000:3b:00"), std::nullopt);
  EXPECT_EQ(NormalizePciBusId("0000:3b:20.0"), std::nullopt);
  EXPECT_EQ(NormalizePciBusId("zz:00.0"), std::nullopt);
  EXPECT_EQ(NormalizePciBusId(""), std::nullopt);

  EXPECT_EQ(NvmlArchitectureName(9), "Hopper");
  EXPECT_EQ(NvmlArchitectureName(7), "Ampere");
  EXPECT_EQ(NvmlArchitectureName(10), "Blackwell");
  EXPECT_EQ(NvmlArchitectureName(0xffffffffu), std::nullopt);
}

}  // namespace
}  // namespace accel_dra::discovery
