// Preparer: what the probe relies on in claim specs — device nodes at their /dev path, the
// inspect tool and the driver version file mounted read-only (also after recovery), and the
// test-only --testing-expose-all-devices breach.

#include <gtest/gtest.h>

#include "claims_test_util.h"

namespace accel_dra::claims::testing {
namespace {

class PreparerMountsTest : public PreparerTestBase {
 protected:
  // An inventory whose devices carry a driver version file mount, nodes under a run dir.
  static model::InventoryPtr InventoryWithVersionFile(const std::string& version_file) {
    model::Inventory base = *SimInventory();
    std::vector<model::Device> devices = base.devices();
    for (auto& d : devices) {
      for (auto& n : d.device_nodes) n = "/run/x/dev" + n.substr(4);  // /dev/accelN → run dir
      d.read_only_mounts.push_back({version_file, std::string(model::kDriverVersionContainerPath)});
    }
    return std::make_shared<const model::Inventory>(std::move(devices));
  }
  cdi::Spec SpecOf(const std::string& uid) {
    auto spec = cdi::ParseJson(ReadAll(dirs_->SpecPath(uid)));
    EXPECT_TRUE(spec.ok()) << spec.status().ToString();
    return spec.ok() ? *spec : cdi::Spec{};
  }
  static std::vector<std::pair<std::string, std::string>> MountPairs(const cdi::Spec& s) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& m : s.container_edits.mounts) {
      EXPECT_EQ(m.options, (std::vector<std::string>{"ro", "nosuid", "nodev", "bind"}));
      EXPECT_EQ(m.type, "bind");
      out.emplace_back(m.host_path, m.container_path);
    }
    return out;
  }
};

TEST_F(PreparerMountsTest, DeviceNodesAppearAtTheirDevPath) {
  inventory_ = InventoryWithVersionFile("/run/x/sim-driver/version");
  Reopen();
  PutAndPrepare("c", Uid(1), "gpu-3");
  auto spec = SpecOf(Uid(1));
  ASSERT_EQ(spec.devices.size(), 1u);
  ASSERT_EQ(spec.devices[0].container_edits.device_nodes.size(), 1u);
  EXPECT_EQ(spec.devices[0].container_edits.device_nodes[0].path, "/dev/accel3");
  EXPECT_EQ(spec.devices[0].container_edits.device_nodes[0].host_path, "/run/x/dev/accel3");
}

TEST_F(PreparerMountsTest, InspectToolAndVersionFileAreMountedOnceAndSurviveRecovery) {
  inventory_ = InventoryWithVersionFile("/run/x/sim-driver/version");
  base_opts_.inspect_tool = "/opt/tools/accel-dra-inspect";
  Reopen();
  const std::string uid = Uid(2);
  claims_.Put(ClaimJson(
      "two", uid,
      {Result{.request = "a", .device = "gpu-0"}, Result{.request = "b", .device = "gpu-1"}}));
  ASSERT_TRUE(PrepareOne(Ref("two", uid)).ok());
  auto spec = SpecOf(uid);
  // Two devices with the same version file: one mount. Sorted by container path.
  EXPECT_EQ(MountPairs(spec),
            (std::vector<std::pair<std::string, std::string>>{
                {"/run/x/sim-driver/version", "/run/accel-dra/driver/version"},
                {"/opt/tools/accel-dra-inspect", "/usr/local/bin/accel-dra-inspect"}}));
  for (const auto& d : spec.devices) EXPECT_TRUE(d.container_edits.mounts.empty());

  // The checkpoint records the device's mounts; a reboot (empty CDI root) re-creates the same
  // spec from it, even though the inventory no longer has the mount.
  auto entry = Entry(uid);
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->devices[0].mounts,
            (std::vector<model::FileMount>{
                {"/run/x/sim-driver/version", "/run/accel-dra/driver/version"}}));
  EXPECT_EQ(entry->devices[0].device_nodes, std::vector<std::string>{"/run/x/dev/accel0"});
  const std::string before = ReadAll(dirs_->SpecPath(uid));
  Close();
  fs::remove_all(dirs_->cdi());
  claims_.Remove("two");
  inventory_ = SimInventory();
  Open();
  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->specs_recreated, 1);
  EXPECT_EQ(ReadAll(dirs_->SpecPath(uid)), before);
  ExpectConsistent();
}

TEST_F(PreparerMountsTest, OldRecordsWithoutMountsTakeThemFromTheInventory) {
  inventory_ = InventoryWithVersionFile("/v");
  Reopen();
  const std::string uid = Uid(3);
  PutAndPrepare("old", uid, "gpu-0");
  // Drop "mounts" from the record, as a checkpoint written before mounts existed has it.
  ASSERT_TRUE(
      checkpoint_->Update([&](checkpoint::State& s) { s.claims[uid].devices[0].mounts.reset(); })
          .ok());
  Close();
  fs::remove_all(dirs_->cdi());
  Open();
  ASSERT_TRUE(preparer_->Recover().ok());
  EXPECT_EQ(
      MountPairs(SpecOf(uid)),
      (std::vector<std::pair<std::string, std::string>>{{"/v", "/run/accel-dra/driver/version"}}));
}

TEST_F(PreparerMountsTest, DriverInfoFilesCarryThePublishedVersionsAndTheSmiToolIsMounted) {
  // SimInventory's devices publish driverVersion and runtimeVersion (simulated defaults).
  const fs::path info = dirs_->data() / "driver-info";
  base_opts_.driver_info_dir = info.string();
  base_opts_.smi_tool = "/opt/tools/accel-dra-smi";
  Reopen();
  const model::Device* dev = inventory_->Find("gpu-0");
  ASSERT_NE(dev, nullptr);
  const std::string driver = dev->attributes.at("driverVersion").string_value();
  const std::string runtime = dev->attributes.at("runtimeVersion").string_value();
  PutAndPrepare("info", Uid(6), "gpu-0");
  const std::string dir = (info / ("driver-" + driver + "_runtime-" + runtime)).string();
  EXPECT_EQ(MountPairs(SpecOf(Uid(6))),
            (std::vector<std::pair<std::string, std::string>>{
                {dir + "/driver-version", "/run/accel-dra/driver/driver-version"},
                {dir + "/runtime-version", "/run/accel-dra/driver/runtime-version"},
                {"/opt/tools/accel-dra-smi", "/usr/local/bin/accel-dra-smi"}}));
  EXPECT_EQ(ReadAll(dir + "/driver-version"), driver + "\n");
  EXPECT_EQ(ReadAll(dir + "/runtime-version"), runtime + "\n");
}

TEST_F(PreparerMountsTest, ADeviceWhoseDriverStackIsBrokenIsRefusedWithTheReason) {
  std::vector<model::Device> devices = inventory_->devices();
  devices[0].driver_stack_problem =
      "driver stack under /: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15 is another version "
      "than the driver's 570.86.15 (no libcuda.so.570.86.15)";
  inventory_ = std::make_shared<const model::Inventory>(devices);
  Reopen();
  claims_.Put(ClaimJson("broken", Uid(7), {Result{.device = devices[0].name}}));
  auto r = PrepareOne(Ref("broken", Uid(7)));
  EXPECT_NE(r.error.find("cannot be given its driver stack"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("libcuda.so.550.54.15 is another version"), std::string::npos);
  EXPECT_FALSE(SpecExists(Uid(7)));
  EXPECT_FALSE(Entry(Uid(7)).has_value());
}

TEST_F(PreparerMountsTest, WithoutOptionsNoMounts) {
  PutAndPrepare("plain", Uid(4), "gpu-0");
  EXPECT_TRUE(SpecOf(Uid(4)).container_edits.mounts.empty());
}

TEST_F(PreparerMountsTest, TestingExposeAllDevicesGivesEveryDeviceToEveryClaim) {
  base_opts_.testing_expose_all_devices = true;
  Reopen();
  PutAndPrepare("one", Uid(5), "gpu-7");
  auto spec = SpecOf(Uid(5));
  ASSERT_EQ(spec.devices.size(), 1u);  // the claim still has one CDI device...
  // ...but the spec-level edits expose all other devices' nodes and names.
  EXPECT_EQ(spec.container_edits.device_nodes.size(), static_cast<size_t>(kSimDevices - 1));
  std::set<std::string> nodes;
  for (const auto& n : spec.container_edits.device_nodes) nodes.insert(n.path);
  EXPECT_TRUE(nodes.contains("/dev/accel0"));
  EXPECT_FALSE(nodes.contains("/dev/accel7"));  // already the claim's device's own node
  std::string visible;
  const std::string var = cdi::VisibleDevicesVariable(Uid(5)) + "=";
  for (const auto& e : spec.container_edits.env) {
    if (e.rfind(var, 0) == 0) visible = e.substr(var.size());
  }
  EXPECT_EQ(visible.rfind("gpu-7,", 0), 0u) << visible;  // its own device first
  EXPECT_EQ(std::count(visible.begin(), visible.end(), ','), kSimDevices - 1) << visible;
}

}  // namespace
}  // namespace accel_dra::claims::testing
