#include "accel_dra/discovery/health.h"

#include <gtest/gtest.h>

#include <fstream>

#include "accel_dra/discovery/manager.h"
#include "accel_dra/discovery/pci.h"
#include "accel_dra/slices/slices.h"
#include "fixture_copy.h"

namespace accel_dra::discovery {
namespace {

using testing::FixtureCopy;
using testing::kHosts;
namespace fs = std::filesystem;
using model::DeviceHealthStatus;

struct Host {
  explicit Host(const std::string& name)
      : copy(name), tracker(Env::Default(), HostRoot(copy.root()), "node-a") {
    mgr.AddBackend(std::make_unique<PciBackend>(Env::Default(), HostRoot(copy.root()),
                                                PciOptions{kHosts / "pci.ids"}));
  }
  // Rediscovers and re-checks health, as the plugin's loop does after an event.
  model::InventoryPtr Update(const NvmlInfo* nvml = nullptr) {
    auto inv = mgr.Refresh();
    tracker.Update(*inv, nvml);
    return inv;
  }
  DeviceHealthStatus Health(const std::string& device) {
    for (const auto& d : tracker.Snapshot().devices) {
      if (d.device == device) return d.health;
    }
    return DeviceHealthStatus::kUnknown;
  }
  FixtureCopy copy;
  DeviceManager mgr;
  DeviceHealthTracker tracker;
};

TEST(DeviceHealthTracker, AllHealthyOnAGoodHostAndStableGeneration) {
  Host h("h100x8");
  h.Update();
  auto s = h.tracker.Snapshot();
  ASSERT_EQ(s.devices.size(), 8u);
  EXPECT_EQ(s.generation, 1u);
  for (const auto& d : s.devices) {
    EXPECT_EQ(d.pool, "node-a");
    EXPECT_EQ(d.health, DeviceHealthStatus::kHealthy) << d.device;
  }
  h.Update();
  EXPECT_EQ(h.tracker.generation(), 1u) << "nothing changed: same generation";
  EXPECT_TRUE(h.tracker.Unhealthy().empty());
}

TEST(DeviceHealthTracker, DeviceNodeGoneIsUnhealthyAndBackIsHealthy) {
  Host h("h100x8");
  h.Update();
  fs::path node = h.copy / "dev/nvidia3";
  fs::rename(node, h.copy / "nvidia3.away");
  auto inv = h.Update();
  // Discovery no longer lists the node, the tracker remembers it was there.
  EXPECT_EQ(inv->Find("gpu-0000-48-00-0")->device_nodes.front(), "/dev/nvidiactl");
  EXPECT_EQ(h.Health("gpu-0000-48-00-0"), DeviceHealthStatus::kUnhealthy);
  EXPECT_EQ(h.Health("gpu-0000-38-00-0"), DeviceHealthStatus::kHealthy);
  auto bad = h.tracker.Unhealthy();
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad["gpu-0000-48-00-0"].reason, "DeviceNodeMissing");
  EXPECT_EQ(bad["gpu-0000-48-00-0"].message, "device node /dev/nvidia3 is missing");
  EXPECT_EQ(h.tracker.generation(), 2u);
  // The health stream's message says why (kubelet shows it in the pod status).
  for (const auto& d : h.tracker.Snapshot().devices) {
    EXPECT_EQ(d.message, d.device == "gpu-0000-48-00-0" ? "device node /dev/nvidia3 is missing"
                                                        : "all health checks pass")
        << d.device;
  }

  fs::rename(h.copy / "nvidia3.away", node);
  h.Update();
  EXPECT_EQ(h.Health("gpu-0000-48-00-0"), DeviceHealthStatus::kHealthy);
  EXPECT_EQ(h.tracker.generation(), 3u);
}

TEST(DeviceHealthTracker, SharedControlNodeGoneMakesEveryGpuUnhealthy) {
  Host h("h100x8");
  h.Update();
  fs::remove(h.copy / "dev/nvidiactl");
  h.Update();
  EXPECT_EQ(h.tracker.Unhealthy().size(), 8u);
}

TEST(DeviceHealthTracker, UnboundDriverIsUnhealthyRebindIsHealthy) {
  Host h("mixed");
  h.Update();
  fs::path driver = h.copy.DeviceDir("0000:03:00.0") / "driver";  // the AMD GPU, amdgpu
  fs::path target = fs::read_symlink(driver);
  std::string name;
  for (const auto& d : h.mgr.current()->devices()) {
    if (d.attributes.at("pciBusID").string_value() == "0000:03:00.0") name = d.name;
  }
  ASSERT_FALSE(name.empty());
  fs::remove(driver);
  h.Update();
  auto bad = h.tracker.Unhealthy();
  ASSERT_EQ(bad.count(name), 1u);
  EXPECT_EQ(bad[name].reason, "DriverUnbound");
  EXPECT_EQ(bad[name].message, "PCI driver amdgpu unbound");
  uint64_t gen = h.tracker.generation();
  fs::create_symlink(target, driver);
  h.Update();
  EXPECT_EQ(h.Health(name), DeviceHealthStatus::kHealthy);
  EXPECT_GT(h.tracker.generation(), gen);
}

TEST(DeviceHealthTracker, RemovedDeviceLeavesTheList) {
  Host h("h100x8");
  h.Update();
  h.copy.RemoveDevice("0000:c8:00.0");
  h.Update();
  EXPECT_EQ(h.tracker.Snapshot().devices.size(), 7u);
  EXPECT_EQ(h.tracker.generation(), 2u);
}

TEST(DeviceHealthTracker, GpuNvmlCannotUseIsUnhealthy) {
  Host h("h100x8");
  auto inv = h.Update();
  NvmlInfo nvml;
  for (const auto& d : inv->devices()) {
    std::string bus = d.attributes.at("pciBusID").string_value();
    if (bus == "0000:98:00.0") continue;  // NVML could not get its handle
    NvmlGpu g;
    g.bus_id = bus;
    nvml.gpus.push_back(g);
  }
  nvml.warnings.push_back("GPU 4 skipped: GPU is lost (NVML error 15)");
  h.tracker.Update(*inv, &nvml);
  auto bad = h.tracker.Unhealthy();
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad["gpu-0000-98-00-0"].reason, "NvmlError");
  EXPECT_NE(bad["gpu-0000-98-00-0"].message.find("GPU is lost"), std::string::npos);
  h.tracker.Update(*inv, nullptr);  // NVML not in use: no NVML verdict
  EXPECT_TRUE(h.tracker.Unhealthy().empty());
}

TEST(DeviceHealthTracker, SimulatedDeviceIsHealthyUnlessItsNodeIsMissing) {
  FixtureCopy host("none");
  fs::create_directories(host / "dev");
  std::ofstream(host / "dev/accel-sim0").put('\n');
  DeviceHealthTracker t(Env::Default(), HostRoot(host.root()), "p");
  model::Device plain;
  plain.name = "sim-0";
  model::Device with_node;
  with_node.name = "sim-1";
  with_node.device_nodes = {"/dev/accel-sim0"};
  model::Inventory inv({plain, with_node});
  t.Update(inv);
  EXPECT_TRUE(t.Unhealthy().empty());
  fs::remove(host / "dev/accel-sim0");
  t.Update(inv);
  auto bad = t.Unhealthy();
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad.begin()->first, "sim-1");
}

// A simulated profile may name device nodes nobody created (plain --simulate): a node the device
// never had says nothing about its health.
TEST(DeviceHealthTracker, NodeThatNeverExistedIsNotAProblem) {
  FixtureCopy host("none");
  DeviceHealthTracker t(Env::Default(), HostRoot(host.root()), "p");
  model::Device d;
  d.name = "sim-0";
  d.device_nodes = {"/dev/accel-sim0"};
  model::Inventory inv({d});
  t.Update(inv);
  EXPECT_TRUE(t.Unhealthy().empty());
  fs::create_directories(host / "dev");
  std::ofstream(host / "dev/accel-sim0").put('\n');
  t.Update(inv);
  EXPECT_TRUE(t.Unhealthy().empty());
  fs::remove(host / "dev/accel-sim0");  // now it had it, and lost it
  t.Update(inv);
  EXPECT_EQ(t.Unhealthy().size(), 1u);
}

TEST(DeviceHealthTracker, TaintsGoIntoTheSliceAndDoNotCountAsAttributes) {
  Host h("h100x8");
  h.Update();
  fs::remove(h.copy / "dev/nvidia5");
  auto inv = h.Update();
  auto tainted = WithUnhealthyTaints(inv, h.tracker.Unhealthy(), "accel-dra.dev");
  EXPECT_EQ(WithUnhealthyTaints(inv, {}, "accel-dra.dev"), inv) << "no copy when all healthy";
  ASSERT_TRUE(tainted->Find("gpu-0000-a8-00-0"));
  ASSERT_EQ(tainted->Find("gpu-0000-a8-00-0")->taints.size(), 1u);
  EXPECT_TRUE(tainted->Find("gpu-0000-98-00-0")->taints.empty());
  slices::PoolOptions opts;
  opts.driver = "accel-dra.dev";
  opts.node_name = "n";
  auto pool = slices::BuildPool(*tainted, opts);
  ASSERT_EQ(pool.chunks.size(), 1u);
  const auto& dev = pool.chunks[0][5];
  ASSERT_EQ(dev["name"], "gpu-0000-a8-00-0");
  EXPECT_EQ(dev["taints"], nlohmann::json::parse(R"([{"key": "accel-dra.dev/unhealthy",
      "value": "DeviceNodeMissing", "effect": "NoSchedule"}])"));
  EXPECT_FALSE(pool.chunks[0][4].contains("taints"));
  EXPECT_TRUE(pool.problems.empty());
}

}  // namespace
}  // namespace accel_dra::discovery
