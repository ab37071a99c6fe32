#include <gtest/gtest.h>

#include "accel_dra/discovery/simulated.h"
#include "accel_dra/slices/slices.h"

namespace accel_dra::slices {
namespace {
using model::AttrValue;
using model::Device;

PoolOptions Pool() {
  PoolOptions p;
  p.driver = "accel-dra.dev";
  p.node_name = "node-0";
  return p;
}

model::Inventory Simulated(int n) {
  discovery::SimulatedBackend sim(Env::Default(), "node-0", discovery::DefaultSimProfile(n));
  return model::Inventory(sim.Discover().value());
}

TEST(BuilderTest, SplitsAtTheApiserverLimit) {
  auto pool = BuildPool(Simulated(300), Pool());
  ASSERT_EQ(pool.chunks.size(), 3u);
  EXPECT_EQ(pool.chunks[0].size(), 128u);
  EXPECT_EQ(pool.chunks[1].size(), 128u);
  EXPECT_EQ(pool.chunks[2].size(), 44u);
  EXPECT_TRUE(pool.problems.empty());
  // Sorted by name across chunks; deterministic.
  EXPECT_EQ(pool.chunks[0][0]["name"], "gpu-0");
  EXPECT_EQ(BuildPool(Simulated(300), Pool()).chunks, pool.chunks);
}

TEST(BuilderTest, SliceShape) {
  auto pool = BuildPool(Simulated(2), Pool());
  auto opts = Pool();
  opts.node_uid = "1234";
  Json s = MakeSlice(opts, pool.chunks[0], 7, 1);
  EXPECT_EQ(s["apiVersion"], "resource.k8s.io/v1");
  EXPECT_EQ(s["metadata"]["generateName"], "node-0-accel-dra.dev-");
  EXPECT_EQ(s["metadata"]["ownerReferences"][0]["uid"], "1234");
  EXPECT_EQ(s["spec"]["nodeName"], "node-0");
  EXPECT_EQ(s["spec"]["driver"], "accel-dra.dev");
  EXPECT_EQ(s["spec"]["pool"]["name"], "node-0");
  EXPECT_EQ(s["spec"]["pool"]["generation"], 7);
  EXPECT_EQ(s["spec"]["pool"]["resourceSliceCount"], 1);
  const Json& d = s["spec"]["devices"][1];
  EXPECT_EQ(d["name"], "gpu-1");
  EXPECT_EQ(d["attributes"]["driverVersion"]["version"], "1.0.0");
  EXPECT_EQ(d["attributes"]["index"]["int"], 1);
  EXPECT_EQ(d["attributes"]["simulated"]["bool"], true);
  EXPECT_EQ(d["capacity"]["memory"]["value"], "80Gi");
}

TEST(BuilderTest, SanitizeKeepsWhatIsValid) {
  model::Device d;
  d.name = "gpu-0";
  d.attributes.emplace("driverVersion", model::AttrValue::Version("535.104.05"));  // leading zero
  d.attributes.emplace("productName", model::AttrValue::String(std::string(65, 'x')));
  d.attributes.emplace("bad-name", model::AttrValue::Int(1));
  d.attributes.emplace("example.com/ok", model::AttrValue::Int(1));
  d.attributes.emplace("Bad_Domain/x", model::AttrValue::Int(1));
  d.capacity.emplace("memory", "lots");
  auto r = SanitizeDevice(d);
  EXPECT_TRUE(r.keep);
  EXPECT_EQ(r.problems.size(), 5u);
  EXPECT_EQ(d.attributes.size(), 1u);
  EXPECT_TRUE(d.attributes.count("example.com/ok"));
  EXPECT_TRUE(d.capacity.empty());

  model::Device many;
  many.name = "gpu-1";
  for (int i = 0; i < 40; ++i)
    many.attributes.emplace("a" + std::to_string(100 + i), model::AttrValue::Int(i));
  many.capacity.emplace("memory", "1Gi");
  r = SanitizeDevice(many);
  EXPECT_EQ(many.attributes.size() + many.capacity.size(), kMaxAttributesAndCapacities);
  EXPECT_EQ(r.problems.size(), 9u);
  EXPECT_TRUE(many.attributes.count("a100"));

  model::Device bad;
  bad.name = "GPU_0";
  EXPECT_FALSE(SanitizeDevice(bad).keep);
  auto pool = BuildPool(model::Inventory({bad, many}), Pool());
  ASSERT_EQ(pool.chunks.size(), 1u);
  EXPECT_EQ(pool.chunks[0].size(), 1u);
}

}  // namespace
}  // namespace accel_dra::slices
