// Preparer and physical device identity (issue 11, point 1): an inventory from the real PCI
// backend over a copy of the h100x8 fixture host (names from PCI addresses, identities with bus
// IDs; NVML's UUIDs added by hand where a test needs them). Exclusivity is checked on physical
// identity, not only on names; a prepared claim whose device vanished or changed is refused
// when kubelet asks again; a claim prepared under a former name is still answered.

#include <gtest/gtest.h>

#include "../discovery_events/fixture_copy.h"
#include "accel_dra/discovery/pci.h"
#include "claims_test_util.h"

namespace accel_dra::claims::testing {
namespace {

const fs::path kHosts = fs::path(ACCEL_DRA_SOURCE_DIR) / "tests/fixtures/hosts";
constexpr const char* kGpu1 = "gpu-0000-28-00-0";  // bus 0000:28:00.0, /dev/nvidia1
constexpr const char* kGpu2 = "gpu-0000-38-00-0";  // bus 0000:38:00.0, /dev/nvidia2

class PreparerIdentityTest : public PreparerTestBase {
 protected:
  void SetUp() override {
    PreparerTestBase::SetUp();
    Rediscover();
  }
  // Discovers the host copy as the plugin would and restarts the preparer on that inventory,
  // after `edit` (e.g. NVML's UUIDs).
  void Rediscover(const std::function<void(std::vector<model::Device>&)>& edit = nullptr) {
    discovery::PciBackend pci(Env::Default(), HostRoot(host_.root()),
                              discovery::PciOptions{kHosts / "pci.ids"});
    auto devices = pci.Discover();
    ASSERT_TRUE(devices.ok()) << devices.status().ToString();
    if (edit) edit(*devices);
    inventory_ = std::make_shared<const model::Inventory>(std::move(*devices));
    Reopen();
  }
  static void SetUuid(std::vector<model::Device>& devices, const std::string& name,
                      const std::string& uuid) {
    for (auto& d : devices) {
      if (d.name == name) d.identity.uuid = uuid;
    }
  }
  // Puts a completed claim into the checkpoint as an earlier plugin version recorded it.
  void PutRecord(const std::string& name, const std::string& uid, model::PreparedDevice d) {
    ASSERT_TRUE(checkpoint_
                    ->Update([&](checkpoint::State& s) {
                      model::PreparedClaim c;
                      c.ns = kNamespace;
                      c.name = name;
                      c.state = ClaimState::kPrepareCompleted;
                      c.devices = {std::move(d)};
                      s.claims[uid] = c;
                    })
                    .ok());
  }
  // The record an older plugin wrote for this host's second GPU when it was called "gpu-1":
  // device nodes, no identity.
  static model::PreparedDevice LegacyGpu1() {
    model::PreparedDevice d;
    d.request_names = {"main"};
    d.pool = kNode;
    d.device = "gpu-1";
    d.cdi_device_ids = {"k8s.accel-dra.dev/device=" + Uid(1) + "-gpu-1"};
    d.device_nodes = std::vector<std::string>{"/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm",
                                              "/dev/nvidia-uvm-tools"};
    return d;
  }

  discovery::testing::FixtureCopy host_{"h100x8"};
};

TEST_F(PreparerIdentityTest, TheRecordCarriesThePhysicalIdentity) {
  auto ref = PutAndPrepare("a", Uid(1), kGpu1);
  auto entry = Entry(ref.uid);
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->devices[0].identity, (model::DeviceIdentity{"0000:28:00.0", ""}));
  Reopen();  // from disk
  EXPECT_EQ(Entry(ref.uid)->devices[0].identity.pci_bus_id, "0000:28:00.0");
  // Prepared again: answered from the checkpoint.
  auto again = PrepareOne(ref);
  ASSERT_TRUE(again.ok()) << again.error;
  EXPECT_EQ(again.devices[0].device, kGpu1);
}

// A claim an older plugin prepared on "gpu-1" (names by bus order) holds /dev/nvidia1: the same
// physical GPU is gpu-0000-28-00-0 now, and a new claim allocated that name is refused; shared
// control nodes (/dev/nvidiactl, /dev/nvidia-uvm*) do not count, so another GPU can be taken.
TEST_F(PreparerIdentityTest, ANewClaimCannotTakeAHeldDeviceUnderANewName) {
  PutRecord("old", Uid(1), LegacyGpu1());
  claims_.Put(ClaimJson("new", Uid(2), {Result{.device = kGpu1}}));
  auto r = PrepareOne(Ref("new", Uid(2)));
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.error,
                  "ResourceClaim default/new: device gpu-0000-28-00-0 is the physical "
                  "device (device node /dev/nvidia1) that ResourceClaim default/old (uid " +
                      Uid(1) + ") holds as gpu-1");
  EXPECT_CONTAINS(r.error, "delete that pod, or delete this pod");
  EXPECT_FALSE(Entry(Uid(2)).has_value());
  EXPECT_FALSE(SpecExists(Uid(2)));

  auto other = PutAndPrepare("other", Uid(3), kGpu2);
  EXPECT_TRUE(Entry(other.uid).has_value());

  // Once the old claim is unprepared, the GPU is free under its new name.
  EXPECT_EQ(UnprepareOne(Ref("old", Uid(1))), "");
  r = PrepareOne(Ref("new", Uid(2)));
  EXPECT_TRUE(r.ok()) << r.error;
}

// Identities recorded by this version: the bus ID or the UUID alone is enough.
TEST_F(PreparerIdentityTest, BusIdAndUuidEachIdentifyTheDevice) {
  model::PreparedDevice by_bus = LegacyGpu1();
  by_bus.device = "renamed-a";
  by_bus.device_nodes.reset();
  by_bus.identity.pci_bus_id = "0000:28:00.0";
  PutRecord("bus", Uid(1), by_bus);
  claims_.Put(ClaimJson("new1", Uid(2), {Result{.device = kGpu1}}));
  auto r = PrepareOne(Ref("new1", Uid(2)));
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.error,
                  "is the physical device (PCI bus ID 0000:28:00.0) that ResourceClaim "
                  "default/bus");

  Rediscover([](auto& devices) { SetUuid(devices, kGpu2, "GPU-2222"); });
  model::PreparedDevice by_uuid = by_bus;
  by_uuid.device = "renamed-b";
  by_uuid.identity = {"", "GPU-2222"};
  PutRecord("uuid", Uid(3), by_uuid);
  claims_.Put(ClaimJson("new2", Uid(4), {Result{.device = kGpu2}}));
  r = PrepareOne(Ref("new2", Uid(4)));
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.error,
                  "is the physical device (UUID GPU-2222) that ResourceClaim default/uuid");
}

// Upgrade: a claim prepared under the former name is still answered from the checkpoint.
TEST_F(PreparerIdentityTest, AClaimPreparedUnderAFormerNameIsStillServed) {
  PutRecord("old", Uid(1), LegacyGpu1());
  claims_.Put(ClaimJson("old", Uid(1), {Result{.device = "gpu-1"}}));
  auto r = PrepareOne(Ref("old", Uid(1)));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.devices[0].device, "gpu-1");
}

// The GPU falls off the bus while prepared: kubelet asking again gets an error saying so (never
// the old answer), the other GPUs keep their names and can be prepared.
TEST_F(PreparerIdentityTest, APreparedClaimWhoseDeviceVanishedIsRefused) {
  auto held = PutAndPrepare("held", Uid(1), kGpu1);
  host_.RemoveDevice("0000:28:00.0");
  Rediscover();
  ASSERT_EQ(inventory_->devices().size(), 7u);
  ASSERT_NE(inventory_->Find(kGpu2), nullptr);
  auto r = PrepareOne(held);
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.error,
                  "ResourceClaim default/held was prepared on this node, but its device "
                  "gpu-0000-28-00-0 (PCI bus ID 0000:28:00.0) is gone from this node");
  EXPECT_CONTAINS(r.error, "Delete the pod");
  EXPECT_TRUE(Entry(held.uid).has_value()) << "reported, not dropped";
  PutAndPrepare("other", Uid(2), kGpu2);

  // Back on the bus: the claim is answered again.
  host_.ReAddDevice("0000:28:00.0");
  Rediscover();
  r = PrepareOne(held);
  EXPECT_TRUE(r.ok()) << r.error;
}

// Same name, another physical GPU (NVML's UUID differs): refused, with both UUIDs.
TEST_F(PreparerIdentityTest, APreparedClaimWhoseDeviceChangedIdentityIsRefused) {
  Rediscover([](auto& devices) { SetUuid(devices, kGpu1, "GPU-aaaa"); });
  auto held = PutAndPrepare("held", Uid(1), kGpu1);
  EXPECT_EQ(Entry(held.uid)->devices[0].identity,
            (model::DeviceIdentity{"0000:28:00.0", "GPU-aaaa"}));
  // NVML not usable (no UUID known): nothing contradicts, still served.
  Rediscover();
  EXPECT_TRUE(PrepareOne(held).ok());
  Rediscover([](auto& devices) { SetUuid(devices, kGpu1, "GPU-bbbb"); });
  auto r = PrepareOne(held);
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.error,
                  "its device gpu-0000-28-00-0 is another physical device now (UUID "
                  "GPU-bbbb, was GPU-aaaa)");
  // And no new claim gets the name while the old claim holds it.
  claims_.Put(ClaimJson("new", Uid(2), {Result{.device = kGpu1}}));
  r = PrepareOne(Ref("new", Uid(2)));
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.error, "already in use by ResourceClaim default/held");
}

TEST(HeldDeviceCheck, States) {
  model::Device d;
  d.name = "gpu-0000-3b-00-0";
  d.identity = {"0000:3b:00.0", "GPU-1"};
  d.device_nodes = {"/dev/nvidia0", "/dev/nvidiactl"};
  model::Inventory inv({d});
  model::PreparedDevice held;
  held.device = "gpu-0000-3b-00-0";
  EXPECT_EQ(model::CheckHeldDevice(held, inv).state, model::HeldDeviceState::kPresent);
  held.identity = {"0000:3b:00.0", ""};
  EXPECT_EQ(model::CheckHeldDevice(held, inv).state, model::HeldDeviceState::kPresent);
  held.identity = {"0000:3b:00.0", "GPU-2"};
  EXPECT_EQ(model::CheckHeldDevice(held, inv).state, model::HeldDeviceState::kChanged);
  held.device = "gpu-0";
  held.identity = {};
  held.device_nodes = std::vector<std::string>{"/dev/nvidiactl"};  // shared: says nothing
  EXPECT_EQ(model::CheckHeldDevice(held, inv).state, model::HeldDeviceState::kVanished);
  held.device_nodes = std::vector<std::string>{"/dev/nvidia0", "/dev/nvidiactl"};
  auto c = model::CheckHeldDevice(held, inv);
  EXPECT_EQ(c.state, model::HeldDeviceState::kRenamed);
  EXPECT_EQ(c.current_name, "gpu-0000-3b-00-0");
  held.identity = {"", "GPU-1"};
  held.device_nodes.reset();
  EXPECT_EQ(model::CheckHeldDevice(held, inv).state, model::HeldDeviceState::kRenamed);
  held.identity = {"0000:3c:00.0", "GPU-1"};  // moved to another slot: not simply renamed
  EXPECT_EQ(model::CheckHeldDevice(held, inv).state, model::HeldDeviceState::kVanished);
}

// A node that several devices list (a simulated profile with one node for all) identifies none.
TEST(PhysicalOverlap, SharedNodesDoNotCount) {
  model::Device a;
  a.name = "sim-0";
  a.device_nodes = {"/dev/sim", "/dev/sim0"};
  model::Device b = a;
  b.name = "sim-1";
  b.device_nodes = {"/dev/sim", "/dev/sim1"};
  model::Inventory inv({a, b});
  EXPECT_EQ(inv.shared_device_nodes(), (std::set<std::string>{"/dev/sim"}));
  EXPECT_EQ(
      model::PhysicalOverlap({}, a.device_nodes, {}, b.device_nodes, inv.shared_device_nodes()),
      "");
  EXPECT_EQ(model::PhysicalOverlap({}, {"/dev/kfd"}, {}, {"/dev/kfd"}, {}), "");
  EXPECT_EQ(model::PhysicalOverlap({}, {"/dev/dri/card1"}, {}, {"/dev/dri/card1"}, {}),
            "device node /dev/dri/card1");
}

}  // namespace
}  // namespace accel_dra::claims::testing
