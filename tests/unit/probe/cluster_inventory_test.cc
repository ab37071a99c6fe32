// The probe's view of what the driver publishes: pools by generation, completeness, usable devices
// per Ready and selected node, the evidence line per pool, device attributes.

#include "accel_dra/probe/cluster_inventory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace accel_dra::probe {
namespace {
using Json = nlohmann::json;
using ::testing::ElementsAre;

Json NodeObject(const std::string& name, const std::string& ready) {
  return {{"metadata", {{"name", name}}},
          {"status", {{"conditions", Json::array({{{"type", "Ready"}, {"status", ready}}})}}}};
}

Json Slice(const std::string& pool, const std::string& node, int generation, int count,
           const std::vector<std::string>& devices) {
  Json devs = Json::array();
  for (const auto& d : devices) devs.push_back({{"name", d}});
  return {{"spec",
           {{"driver", "accel-dra.dev"},
            {"nodeName", node},
            {"pool", {{"name", pool}, {"generation", generation}, {"resourceSliceCount", count}}},
            {"devices", devs}}}};
}

std::vector<std::string> Names(const std::vector<PoolDevice>& devices) {
  std::vector<std::string> out;
  for (const auto& d : devices) out.push_back(d.pool + "/" + d.name);
  return out;
}

TEST(ClusterInventory, NewestGenerationOnlyAndCompleteness) {
  auto inv =
      BuildClusterInventory({NodeObject("n1", "True")}, nullptr,
                            {Slice("n1", "n1", 1, 1, {"old-0"}), Slice("n1", "n1", 2, 2, {"gpu-0"}),
                             Slice("n1", "n1", 2, 2, {"gpu-1"})});
  const PoolInfo& p = inv.pools.at("n1");
  EXPECT_EQ(p.generation, 2);
  EXPECT_EQ(p.slices_at_generation, 2);
  EXPECT_TRUE(p.complete());
  EXPECT_THAT(Names(inv.usable_by_node.at("n1")), ElementsAre("n1/gpu-0", "n1/gpu-1"));
  EXPECT_EQ(DescribePool(inv, p),
            "pool n1: generation 2, 2/2 slices (complete), 2 devices, node n1 Ready");
}

TEST(ClusterInventory, OlderSliceAfterNewerIsIgnored) {
  auto inv = BuildClusterInventory({NodeObject("n1", "True")}, nullptr,
                                   {Slice("p", "n1", 3, 1, {"a"}), Slice("p", "n1", 2, 1, {"b"})});
  EXPECT_THAT(Names(inv.pools.at("p").devices), ElementsAre("p/a"));
  EXPECT_TRUE(inv.pools.at("p").complete());
}

TEST(ClusterInventory, IncompleteNotReadyUnselectedAndMissingNodesAreNotUsable) {
  std::set<std::string> selected = {"n1", "n2", "n3"};
  auto inv =
      BuildClusterInventory({NodeObject("n1", "True"), NodeObject("n2", "False"),
                             NodeObject("n3", "True"), NodeObject("n4", "True")},
                            &selected,
                            {Slice("p1", "n1", 1, 2, {"a"}), Slice("p2", "n2", 1, 1, {"b"}),
                             Slice("p4", "n4", 1, 1, {"d"}), Slice("p5", "gone", 1, 1, {"e"}),
                             Slice("p6", "", 1, 1, {"f"}), Slice("p3", "n3", 1, 1, {"c"})});
  EXPECT_THAT(Names(inv.usable_by_node.at("n3")), ElementsAre("p3/c"));
  EXPECT_EQ(inv.usable_by_node.size(), 1u);
  EXPECT_EQ(DescribePool(inv, inv.pools.at("p1")),
            "pool p1: generation 1, 1/2 slices (INCOMPLETE), 1 devices, node n1 Ready");
  EXPECT_EQ(DescribePool(inv, inv.pools.at("p2")),
            "pool p2: generation 1, 1/1 slices (complete), 1 devices, node n2 NotReady");
  EXPECT_EQ(DescribePool(inv, inv.pools.at("p4")),
            "pool p4: generation 1, 1/1 slices (complete), 1 devices, node n4 Ready (not "
            "selected)");
  EXPECT_EQ(DescribePool(inv, inv.pools.at("p5")),
            "pool p5: generation 1, 1/1 slices (complete), 1 devices, node gone does not exist");
  EXPECT_EQ(DescribePool(inv, inv.pools.at("p6")),
            "pool p6: generation 1, 1/1 slices (complete), 1 devices, no nodeName");
}

TEST(ClusterInventory, ZeroSliceCountIsNeverComplete) {
  auto inv =
      BuildClusterInventory({NodeObject("n1", "True")}, nullptr, {Slice("p", "n1", 1, 0, {"a"})});
  EXPECT_FALSE(inv.pools.at("p").complete());
  EXPECT_TRUE(inv.usable_by_node.empty());
}

TEST(ClusterInventory, DeviceAttributeBareOrQualifiedAnyType) {
  Json d = {{"attributes",
             {{"driverVersion", {{"version", "1.2.3"}}},
              {"accel-dra.dev/containerRuntime", {{"string", "containerd"}}},
              {"index", {{"int", 3}}},
              {"healthy", {{"bool", true}}}}}};
  EXPECT_EQ(DeviceAttribute(d, "accel-dra.dev", "driverVersion"), "1.2.3");
  EXPECT_EQ(DeviceAttribute(d, "accel-dra.dev", "containerRuntime"), "containerd");
  EXPECT_EQ(DeviceAttribute(d, "other.dev", "containerRuntime"), "");
  EXPECT_EQ(DeviceAttribute(d, "accel-dra.dev", "index"), "3");
  EXPECT_EQ(DeviceAttribute(d, "accel-dra.dev", "healthy"), "true");
  EXPECT_EQ(DeviceAttribute(d, "accel-dra.dev", "missing"), "");
  EXPECT_EQ(DeviceAttribute(Json{{"attributes", "x"}}, "accel-dra.dev", "driverVersion"), "");
}

}  // namespace
}  // namespace accel_dra::probe
