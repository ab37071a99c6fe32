// DeviceManager: one failed read keeps the last good state (issue 11, point 3), on a real PCI
// backend over a fixture host copy and on a backend the test fails on purpose.

#include "accel_dra/discovery/manager.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <mutex>

#include "accel_dra/discovery/health.h"
#include "accel_dra/discovery/pci.h"
#include "fixture_copy.h"
#include "log_capture.h"

namespace accel_dra::discovery {
namespace {

namespace fs = std::filesystem;
using model::DeviceHealthStatus;
using test_support::LogCapture;
using testing::FixtureCopy;
using testing::kHosts;

model::Device Dev(const std::string& name) {
  model::Device d;
  d.name = name;
  return d;
}

// Returns what the test sets: devices, or an error.
class ScriptedBackend : public Backend {
 public:
  explicit ScriptedBackend(std::string name) : name_(std::move(name)) {}
  std::string Name() const override { return name_; }
  Expected<std::vector<model::Device>> Discover() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.ok()) return error_;
    return devices_;
  }
  void Set(std::vector<model::Device> devices) {
    std::lock_guard<std::mutex> lock(mu_);
    devices_ = std::move(devices);
    error_ = Status();
  }
  void Fail(const std::string& message) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = Internal(message);
  }

 private:
  std::string name_;
  std::mutex mu_;
  std::vector<model::Device> devices_;
  Status error_;
};

std::vector<std::string> Names(const model::InventoryPtr& inv) {
  std::vector<std::string> out;
  for (const auto& d : inv->devices()) out.push_back(d.name);
  return out;
}

TEST(DeviceManager, AFailingBackendKeepsItsLastGoodDevicesUntilItRecovers) {
  LogCapture logs;
  DeviceManager mgr;
  auto a = std::make_unique<ScriptedBackend>("a");
  auto b = std::make_unique<ScriptedBackend>("b");
  ScriptedBackend* pa = a.get();
  ScriptedBackend* pb = b.get();
  pa->Set({Dev("a-0"), Dev("a-1")});
  pb->Set({Dev("b-0")});
  mgr.AddBackend(std::move(a));
  mgr.AddBackend(std::move(b));
  auto good = mgr.Refresh();
  EXPECT_EQ(Names(good), (std::vector<std::string>{"a-0", "a-1", "b-0"}));
  EXPECT_TRUE(mgr.stale().empty());

  pa->Fail("cannot list /sys/bus/pci/devices");
  for (int i = 0; i < 3; ++i) {
    auto inv = mgr.Refresh();
    EXPECT_EQ(inv, good) << "the same snapshot: nothing to publish";
  }
  EXPECT_EQ(mgr.stale(), (std::set<std::string>{"a-0", "a-1"}));
  EXPECT_EQ(logs.Count("device discovery (a) failed: cannot list /sys/bus/pci/devices; keeping "
                       "its 2 devices from the last successful scan"),
            1)
      << logs.text();

  // The other backend's changes still come through while `a` fails.
  pb->Set({Dev("b-0"), Dev("b-1")});
  EXPECT_EQ(Names(mgr.Refresh()), (std::vector<std::string>{"a-0", "a-1", "b-0", "b-1"}));

  pa->Set({Dev("a-1")});
  EXPECT_EQ(Names(mgr.Refresh()), (std::vector<std::string>{"a-1", "b-0", "b-1"}));
  EXPECT_TRUE(mgr.stale().empty());
  EXPECT_EQ(logs.Count("device discovery (a) works again"), 1) << logs.text();

  // A second failure is logged again.
  pa->Fail("cannot list /sys/bus/pci/devices");
  mgr.Refresh();
  EXPECT_EQ(logs.Count("device discovery (a) failed"), 2) << logs.text();
}

TEST(DeviceManager, ABackendThatNeverSucceededContributesNothing) {
  LogCapture logs;
  DeviceManager mgr;
  auto a = std::make_unique<ScriptedBackend>("a");
  a->Fail("NVML exploded");
  ScriptedBackend* pa = a.get();
  mgr.AddBackend(std::move(a));
  EXPECT_TRUE(mgr.Refresh()->devices().empty());
  mgr.Refresh();
  EXPECT_EQ(logs.Count("device discovery (a) failed: NVML exploded; it contributes no devices"), 1)
      << logs.text();
  pa->Set({Dev("a-0")});
  EXPECT_EQ(Names(mgr.Refresh()), (std::vector<std::string>{"a-0"}));
}

// The real PCI backend: the fixture host's /sys/bus/pci/devices cannot be listed for a while
// (moved away), and a GPU is removed meanwhile. The inventory stays the last good one (Unknown
// health) until sysfs reads again, then shows the removal.
TEST(DeviceManager, UnlistablePciDevicesKeepTheLastGoodInventory) {
  LogCapture logs;
  FixtureCopy host("h100x8");
  DeviceManager mgr;
  mgr.AddBackend(std::make_unique<PciBackend>(Env::Default(), HostRoot(host.root()),
                                              PciOptions{kHosts / "pci.ids"}));
  DeviceHealthTracker tracker(Env::Default(), HostRoot(host.root()), "node-a");
  auto good = mgr.Refresh();
  ASSERT_EQ(good->devices().size(), 8u);
  tracker.Update(*good, HealthContext{nullptr, mgr.stale(), {}});

  fs::path devices = host / "sys/bus/pci/devices";
  fs::rename(devices, host / "sys/bus/pci/devices.away");
  auto inv = mgr.Refresh();
  EXPECT_EQ(inv, good);
  EXPECT_EQ(mgr.stale().size(), 8u);
  tracker.Update(*inv, HealthContext{nullptr, mgr.stale(), {}});
  auto snap = tracker.Snapshot();
  ASSERT_EQ(snap.devices.size(), 8u);
  for (const auto& d : snap.devices) {
    EXPECT_EQ(d.health, DeviceHealthStatus::kUnknown) << d.device;
  }
  EXPECT_TRUE(tracker.Unhealthy().empty()) << "Unknown is no taint";
  EXPECT_EQ(logs.Count("device discovery (pci) failed"), 1) << logs.text();

  fs::rename(host / "sys/bus/pci/devices.away", devices);
  host.RemoveDevice("0000:28:00.0");
  inv = mgr.Refresh();
  EXPECT_EQ(inv->devices().size(), 7u);
  EXPECT_TRUE(mgr.stale().empty());
  EXPECT_EQ(inv->Find("gpu-0000-28-00-0"), nullptr);
  tracker.Update(*inv, HealthContext{nullptr, mgr.stale(), {}});
  for (const auto& d : tracker.Snapshot().devices) {
    EXPECT_EQ(d.health, DeviceHealthStatus::kHealthy) << d.device;
  }
}

}  // namespace
}  // namespace accel_dra::discovery
