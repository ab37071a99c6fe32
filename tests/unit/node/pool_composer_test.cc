#include "accel_dra/node/pool_composer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "log_capture.h"

namespace accel_dra::node {
namespace {

using model::AttrValue;

model::Device MakeDevice(const std::string& name, int attributes, int capacities = 0) {
  model::Device d;
  d.name = name;
  for (int i = 0; i < attributes; ++i)
    d.attributes.emplace("a" + std::to_string(i), AttrValue::Int(i));
  for (int i = 0; i < capacities; ++i) d.capacity.emplace("c" + std::to_string(i), "1");
  return d;
}

model::InventoryPtr Inv(std::vector<model::Device> devices) {
  return std::make_shared<const model::Inventory>(std::move(devices));
}

discovery::NodeAttributes Attrs(std::vector<std::pair<std::string, std::string>> kv,
                                std::vector<std::string> notes = {}) {
  discovery::NodeAttributes a;
  for (auto& [k, v] : kv) a.attributes.emplace_back(k, AttrValue::String(v));
  a.notes = std::move(notes);
  return a;
}

// Records what the composer hands to its sink.
struct Sink {
  std::vector<model::InventoryPtr> got;
  PoolComposer::Sink fn() {
    return [this](model::InventoryPtr inv) { got.push_back(std::move(inv)); };
  }
  const model::Device& Device(const std::string& name) const {
    const model::Device* d = got.back()->Find(name);
    EXPECT_NE(d, nullptr) << name;
    return *d;
  }
};

const discovery::HealthProblem kMissing{"DeviceNodeMissing", "device node /dev/accel1 is missing"};

TEST(PoolComposer, TaintsAreOnWithNoScheduleAndASettleTimeByDefault) {
  PoolComposer::Options o;
  EXPECT_TRUE(o.device_taints);
  EXPECT_EQ(o.taint_effect, "NoSchedule");
  EXPECT_EQ(o.taint_settle, std::chrono::seconds(30));
}

TEST(PoolComposer, TaintsUnhealthyDevicesWhenTaintsAreOn) {
  Sink sink;
  PoolComposer composer({.driver_name = "accel-dra.dev", .device_taints = true, .taint_settle = {}},
                        sink.fn());
  composer.SetInventory(Inv({MakeDevice("gpu-0", 1), MakeDevice("gpu-1", 1)}));
  composer.SetUnhealthy({{"gpu-1", kMissing}});
  ASSERT_TRUE(composer.Publish());
  ASSERT_EQ(sink.got.size(), 1u);
  EXPECT_TRUE(sink.Device("gpu-0").taints.empty());
  EXPECT_EQ(sink.Device("gpu-1").taints,
            (std::vector<model::DeviceTaint>{
                {"accel-dra.dev/unhealthy", "DeviceNodeMissing", "NoSchedule"}}));

  // Healthy again: the taint goes.
  composer.SetUnhealthy({});
  ASSERT_TRUE(composer.Publish());
  EXPECT_TRUE(sink.Device("gpu-1").taints.empty());
}

// A fake steady clock the test moves.
struct FakeClock {
  PoolComposer::Clock::time_point t{};
  std::function<PoolComposer::Clock::time_point()> fn() {
    return [this] { return t; };
  }
};

TEST(PoolComposer, AHealthyAgainDeviceKeepsItsTaintUntilItSettled) {
  using std::chrono::seconds;
  Sink sink;
  FakeClock clock;
  PoolComposer composer({.driver_name = "accel-dra.dev",
                         .taint_effect = "NoExecute",
                         .taint_settle = seconds(30),
                         .now = clock.fn()},
                        sink.fn());
  composer.SetInventory(Inv({MakeDevice("gpu-0", 1), MakeDevice("gpu-1", 1)}));
  composer.SetUnhealthy({{"gpu-1", kMissing}});
  ASSERT_TRUE(composer.Publish());
  const std::vector<model::DeviceTaint> tainted{
      {"accel-dra.dev/unhealthy", "DeviceNodeMissing", "NoExecute"}};
  EXPECT_EQ(sink.Device("gpu-1").taints, tainted);
  EXPECT_FALSE(composer.NextDeadline());

  // Healthy at t=10 s: still tainted, due at 40 s.
  clock.t += seconds(10);
  composer.SetUnhealthy({});
  composer.Publish();
  EXPECT_EQ(sink.Device("gpu-1").taints, tainted);
  ASSERT_TRUE(composer.NextDeadline());
  EXPECT_EQ(*composer.NextDeadline(), PoolComposer::Clock::time_point{} + seconds(40));

  // Failing again at 30 s restarts the wait; healthy at 35 s: due at 65 s.
  clock.t += seconds(20);
  composer.SetUnhealthy({{"gpu-1", kMissing}});
  EXPECT_FALSE(composer.NextDeadline());
  composer.Publish();
  clock.t += seconds(5);
  composer.SetUnhealthy({});
  composer.Publish();
  clock.t = PoolComposer::Clock::time_point{} + seconds(64);
  size_t before = sink.got.size();
  EXPECT_FALSE(composer.Publish()) << "nothing changed before the settle time ends";
  EXPECT_EQ(sink.got.size(), before);
  EXPECT_EQ(sink.Device("gpu-1").taints, tainted);

  clock.t += seconds(1);
  ASSERT_TRUE(composer.Publish());
  EXPECT_TRUE(sink.Device("gpu-1").taints.empty());
  EXPECT_FALSE(composer.NextDeadline());
  EXPECT_FALSE(composer.Publish());
}

TEST(PoolComposer, HealthIsNotPublishedWhenTaintsAreOff) {
  Sink sink;
  PoolComposer composer({.driver_name = "accel-dra.dev", .device_taints = false}, sink.fn());
  composer.SetInventory(Inv({MakeDevice("gpu-0", 1), MakeDevice("gpu-1", 1)}));
  composer.SetUnhealthy({{"gpu-1", kMissing}});
  ASSERT_TRUE(composer.Publish());
  EXPECT_TRUE(sink.Device("gpu-1").taints.empty());
  // A health change alone is no reason to recompose.
  composer.SetUnhealthy({});
  EXPECT_FALSE(composer.Publish());
  EXPECT_EQ(sink.got.size(), 1u);
}

TEST(PoolComposer, AddsNodeAttributesWithinTheLimitAndWarnsOncePerLeftOutName) {
  test_support::LogCapture log;
  Sink sink;
  PoolComposer composer({.driver_name = "accel-dra.dev"}, sink.fn());
  // gpu-0 has room for one more (30 attributes + 1 capacity of 32), gpu-1 for all.
  composer.SetInventory(Inv({MakeDevice("gpu-0", 30, 1), MakeDevice("gpu-1", 2)}));
  composer.SetNodeAttributes(
      Attrs({{"containerRuntime", "containerd"}, {"sharingMode", "Exclusive"}, {"x", "y"}}));
  ASSERT_TRUE(composer.Publish());
  const auto& full = sink.Device("gpu-0");
  EXPECT_EQ(full.attributes.size() + full.capacity.size(), 32u);
  EXPECT_TRUE(full.attributes.count("containerRuntime"));  // the first in priority order
  EXPECT_FALSE(full.attributes.count("sharingMode"));
  EXPECT_FALSE(full.attributes.count("x"));
  const auto& roomy = sink.Device("gpu-1");
  EXPECT_EQ(roomy.attributes.at("containerRuntime"), AttrValue::String("containerd"));
  EXPECT_EQ(roomy.attributes.at("sharingMode"), AttrValue::String("Exclusive"));
  EXPECT_EQ(roomy.attributes.at("x"), AttrValue::String("y"));
  EXPECT_EQ(log.Count("attribute sharingMode left out of some devices: they already have 32 "
                      "attributes and capacities"),
            1)
      << log.text();
  EXPECT_EQ(log.Count("attribute x left out"), 1) << log.text();

  // Recomposed for other reasons: the same names are not warned about again.
  composer.SetNodeAttributes(
      Attrs({{"containerRuntime", "cri-o"}, {"sharingMode", "Exclusive"}, {"x", "y"}}));
  ASSERT_TRUE(composer.Publish());
  composer.SetInventory(Inv({MakeDevice("gpu-0", 31, 1), MakeDevice("gpu-1", 2)}));
  ASSERT_TRUE(composer.Publish());
  EXPECT_EQ(log.Count("left out"), 3) << log.text();  // containerRuntime no longer fits gpu-0
  EXPECT_EQ(log.Count("attribute containerRuntime left out"), 1) << log.text();
}

TEST(PoolComposer, RecomposesOnlyWhenAnInputChanged) {
  Sink sink;
  PoolComposer composer({.driver_name = "accel-dra.dev", .device_taints = true}, sink.fn());
  EXPECT_TRUE(composer.Publish());  // the first call composes, even an empty pool
  EXPECT_FALSE(composer.Publish());

  composer.SetInventory(Inv({MakeDevice("gpu-0", 1)}));
  EXPECT_TRUE(composer.Publish());
  composer.SetInventory(Inv({MakeDevice("gpu-0", 1)}));  // equal content, another snapshot
  composer.SetUnhealthy({});
  composer.SetNodeAttributes(discovery::DriverOnlyAttributes());
  auto with_note = discovery::DriverOnlyAttributes();
  with_note.notes.push_back("a note is not published");
  composer.SetNodeAttributes(with_note);
  EXPECT_FALSE(composer.Publish());
  EXPECT_EQ(composer.compositions(), 2u);
  EXPECT_EQ(sink.got.size(), 2u);

  composer.SetUnhealthy({{"gpu-0", kMissing}});
  EXPECT_TRUE(composer.Publish());
  composer.SetUnhealthy({{"gpu-0", kMissing}});
  EXPECT_FALSE(composer.Publish());
  EXPECT_EQ(sink.got.size(), 3u);
}

TEST(PoolComposer, TheLatestOfEachInputWins) {
  Sink sink;
  PoolComposer composer({.driver_name = "accel-dra.dev", .device_taints = true}, sink.fn());
  composer.SetInventory(Inv({MakeDevice("gpu-0", 1)}));
  composer.SetNodeAttributes(Attrs({{"containerRuntime", "containerd"}}));
  composer.SetUnhealthy({{"gpu-0", kMissing}});
  composer.SetInventory(Inv({MakeDevice("gpu-0", 1), MakeDevice("gpu-1", 1)}));
  composer.SetNodeAttributes(Attrs({{"containerRuntime", "cri-o"}}));
  composer.SetUnhealthy({{"gpu-1", kMissing}});
  ASSERT_TRUE(composer.Publish());
  ASSERT_EQ(sink.got.size(), 1u);
  EXPECT_EQ(sink.got.back()->devices().size(), 2u);
  EXPECT_EQ(sink.Device("gpu-0").attributes.at("containerRuntime"), AttrValue::String("cri-o"));
  EXPECT_TRUE(sink.Device("gpu-0").taints.empty());
  EXPECT_EQ(sink.Device("gpu-1").taints.size(), 1u);
}

TEST(PoolComposer, StartsWithTheDriverOnlyAttributes) {
  Sink sink;
  PoolComposer composer({.driver_name = "accel-dra.dev"}, sink.fn());
  composer.SetInventory(Inv({MakeDevice("gpu-0", 1)}));
  ASSERT_TRUE(composer.Publish());
  for (const auto& [name, value] : discovery::DriverOnlyAttributes().attributes) {
    EXPECT_EQ(sink.Device("gpu-0").attributes.at(name), value) << name;
  }
}

}  // namespace
}  // namespace accel_dra::node
