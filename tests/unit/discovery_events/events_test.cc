#include "accel_dra/discovery/events.h"

#include <gtest/gtest.h>

#include <chrono>

#include "accel_dra/discovery/manager.h"
#include "accel_dra/discovery/pci.h"
#include "fixture_copy.h"

namespace accel_dra::discovery {
namespace {

using namespace std::chrono_literals;
using testing::FixtureCopy;
using testing::kHosts;
namespace fs = std::filesystem;

DeviceManager PciManager(const FixtureCopy& host) {
  DeviceManager m;
  m.AddBackend(std::make_unique<PciBackend>(Env::Default(), HostRoot(host.root()),
                                            PciOptions{kHosts / "pci.ids"}));
  return m;
}

std::vector<std::string> BusIds(const model::InventoryPtr& inv) {
  std::vector<std::string> out;
  for (const auto& d : inv->devices()) out.push_back(d.attributes.at("pciBusID").string_value());
  return out;
}

TEST(InotifyEvents, DeviceRemovedAndAddedIsSeenAndRefreshShowsIt) {
  FixtureCopy host("h100x8");
  auto src = OpenInotifyEvents(HostRoot(host.root()));
  ASSERT_TRUE(src.ok()) << src.status().message();
  auto mgr = PciManager(host);
  ASSERT_EQ(mgr.Refresh()->devices().size(), 8u);
  EXPECT_FALSE(WaitForDeviceEvent(**src, 100ms)) << "no change, no event";

  host.RemoveDevice("0000:c8:00.0");
  ASSERT_TRUE(WaitForDeviceEvent(**src, 2s)) << "removal not seen";
  auto inv = mgr.Refresh();
  EXPECT_EQ(inv->devices().size(), 7u);
  EXPECT_EQ(BusIds(inv).back(), "0000:b8:00.0");
  (*src)->Rearm();

  host.AddDeviceLike("0000:b8:00.0", "0000:d8:00.0");
  ASSERT_TRUE(WaitForDeviceEvent(**src, 2s)) << "hot-add not seen";
  inv = mgr.Refresh();
  ASSERT_EQ(inv->devices().size(), 8u);
  EXPECT_EQ(BusIds(inv).back(), "0000:d8:00.0");
  EXPECT_EQ(inv->devices().back().name, "gpu-0000-d8-00-0");
  (*src)->Rearm();
  EXPECT_FALSE(WaitForDeviceEvent(**src, 100ms));
}

TEST(InotifyEvents, DeviceNodeAndDriverLinkChangesAreSeen) {
  FixtureCopy host("mixed");
  auto src = OpenInotifyEvents(HostRoot(host.root()));
  ASSERT_TRUE(src.ok()) << src.status().message();

  fs::remove(host / "dev/dri/renderD128");  // a subdirectory of /dev
  EXPECT_TRUE(WaitForDeviceEvent(**src, 2s)) << "/dev/dri change not seen";
  fs::remove(host / "dev/kfd");
  EXPECT_TRUE(WaitForDeviceEvent(**src, 2s)) << "/dev change not seen";

  fs::path driver = host.DeviceDir("0000:03:00.0") / "driver";  // amdgpu
  fs::path target = fs::read_symlink(driver);
  fs::remove(driver);  // unbind
  EXPECT_TRUE(WaitForDeviceEvent(**src, 2s)) << "unbind not seen";
  fs::create_symlink(target, driver);  // bind
  EXPECT_TRUE(WaitForDeviceEvent(**src, 2s)) << "bind not seen";
}

TEST(InotifyEvents, NewDeviceDirectoryIsWatchedAfterRearm) {
  FixtureCopy host("h100x8");
  auto src = OpenInotifyEvents(HostRoot(host.root()));
  ASSERT_TRUE(src.ok());
  host.AddDeviceLike("0000:c8:00.0", "0000:d8:00.0");
  ASSERT_TRUE(WaitForDeviceEvent(**src, 2s));
  (*src)->Rearm();
  fs::remove(host.DeviceDir("0000:d8:00.0") / "driver");
  EXPECT_TRUE(WaitForDeviceEvent(**src, 2s)) << "the new device's directory is not watched";
}

TEST(InotifyEvents, MissingTreeIsAnErrorAndOpenDeviceEventsFallsBackToPolling) {
  HostRoot nowhere("/nonexistent/accel-dra-host");
  auto src = OpenInotifyEvents(nowhere);
  ASSERT_FALSE(src.ok());
  EXPECT_NE(src.status().message().find("/nonexistent/accel-dra-host/sys/bus/pci/devices"),
            std::string::npos)
      << src.status().message();
  EXPECT_EQ(OpenDeviceEvents(DeviceEventsMode::kAuto, nowhere), nullptr);
  EXPECT_EQ(OpenDeviceEvents(DeviceEventsMode::kPoll, HostRoot(kHosts / "h100x8")), nullptr);
  auto ok = OpenDeviceEvents(DeviceEventsMode::kAuto, HostRoot(kHosts / "h100x8"));
  ASSERT_NE(ok, nullptr);
  EXPECT_EQ(ok->Name(), "inotify");
}

TEST(UdevEvents, OpensOrSaysWhyNot) {
  // Hosts differ (udevd running or not, netlink allowed or not): either outcome is fine, but
  // a failure must explain itself and OpenDeviceEvents must turn it into polling (nullptr).
  auto src = OpenUdevEvents();
  if (src.ok()) {
    EXPECT_EQ((*src)->Name(), "udev");
    EXPECT_GE((*src)->fd(), 0);
    (*src)->Drain();
  } else {
    EXPECT_FALSE(src.status().message().empty());
    EXPECT_EQ(OpenDeviceEvents(DeviceEventsMode::kUdev, HostRoot("/")), nullptr);
  }
}

TEST(DeviceEventsMode, Parses) {
  EXPECT_EQ(*ParseDeviceEventsMode("auto"), DeviceEventsMode::kAuto);
  EXPECT_EQ(*ParseDeviceEventsMode("udev"), DeviceEventsMode::kUdev);
  EXPECT_EQ(*ParseDeviceEventsMode("inotify"), DeviceEventsMode::kInotify);
  EXPECT_EQ(*ParseDeviceEventsMode("poll"), DeviceEventsMode::kPoll);
  EXPECT_FALSE(ParseDeviceEventsMode("netlink").ok());
}

}  // namespace
}  // namespace accel_dra::discovery
