// Node-level attributes: container runtime, cdiEnabled rule, sharingMode, the 32 limit.

#include "accel_dra/discovery/node_runtime.h"

#include <gtest/gtest.h>

namespace accel_dra::discovery {
namespace {

using Json = nlohmann::json;

Json NodeWith(const std::string& runtime_version) {
  return {{"metadata", {{"name", "n1"}}},
          {"status", {{"nodeInfo", {{"containerRuntimeVersion", runtime_version}}}}}};
}

std::map<std::string, model::AttrValue> AsMap(const NodeAttributes& a) {
  return {a.attributes.begin(), a.attributes.end()};
}

TEST(NodeRuntimeTest, ParsesRuntimeVersion) {
  auto rt = ParseContainerRuntimeVersion("containerd://2.1.4");
  ASSERT_TRUE(rt);
  EXPECT_EQ(rt->name, "containerd");
  EXPECT_EQ(rt->version, "2.1.4");
  rt = ParseContainerRuntimeVersion(" cri-o://1.31.2\n");
  ASSERT_TRUE(rt);
  EXPECT_EQ(rt->name, "cri-o");
  EXPECT_EQ(rt->version, "1.31.2");
  EXPECT_FALSE(ParseContainerRuntimeVersion(""));
  EXPECT_FALSE(ParseContainerRuntimeVersion("containerd"));
  EXPECT_FALSE(ParseContainerRuntimeVersion("://1.2.3"));
  EXPECT_FALSE(ParseContainerRuntimeVersion("containerd://"));
  EXPECT_FALSE(ParseContainerRuntimeVersion("Container D://1.2.3"));
}

TEST(NodeRuntimeTest, ContainerdConfigScan) {
  EXPECT_EQ(ContainerdConfigEnableCdi(""), std::nullopt);
  EXPECT_EQ(ContainerdConfigEnableCdi("version = 3\n[plugins.'io.containerd.cri.v1.runtime']\n"
                                      "  enable_cdi = true\n"),
            true);
  EXPECT_EQ(ContainerdConfigEnableCdi("[plugins.\"io.containerd.grpc.v1.cri\"]\n"
                                      "enable_cdi=false # off\n"),
            false);
  EXPECT_EQ(ContainerdConfigEnableCdi("# enable_cdi = true\n"), std::nullopt);
  EXPECT_EQ(ContainerdConfigEnableCdi("enable_cdi_x = true\nenable_cdi = maybe\n"), std::nullopt);
  EXPECT_EQ(ContainerdConfigEnableCdi("enable_cdi = true\nenable_cdi = false"), false);
}

TEST(NodeRuntimeTest, CdiRule) {
  ContainerdConfig none;  // not readable
  ContainerdConfig empty{true, std::nullopt};
  ContainerdConfig on{true, true};
  ContainerdConfig off{true, false};
  auto cdi = [](const std::string& name, const std::string& v, const ContainerdConfig& c) {
    return CdiEnabledFor(ContainerRuntime{name, v}, c);
  };
  EXPECT_EQ(cdi("containerd", "2.1.4", none), true);
  EXPECT_EQ(cdi("containerd", "2.0.0", empty), true);
  EXPECT_EQ(cdi("containerd", "v2.2.9", off), false);
  EXPECT_EQ(cdi("containerd", "1.7.27", none), std::nullopt);
  EXPECT_EQ(cdi("containerd", "1.7.27", empty), false);
  EXPECT_EQ(cdi("containerd", "1.7.2", on), true);
  EXPECT_EQ(cdi("containerd", "1.6.31", on), false);
  EXPECT_EQ(cdi("cri-o", "1.31.2", none), true);
  EXPECT_EQ(cdi("cri-o", "1.23.0", none), true);
  EXPECT_EQ(cdi("cri-o", "1.22.5", none), false);
  EXPECT_EQ(cdi("docker", "28.2.0", none), std::nullopt);
  EXPECT_EQ(cdi("containerd", "unknown", none), std::nullopt);
}

TEST(NodeRuntimeTest, AttributesFromNode) {
  auto a = NodeAttributesFromNode(NodeWith("containerd://2.1.4"), ContainerdConfig{});
  EXPECT_TRUE(a.notes.empty());
  ASSERT_EQ(a.attributes.size(), 4u);
  EXPECT_EQ(a.attributes[0].first, "containerRuntime");  // priority order
  auto m = AsMap(a);
  EXPECT_EQ(m.at("containerRuntime"), model::AttrValue::String("containerd"));
  EXPECT_EQ(m.at("containerRuntimeVersion"), model::AttrValue::Version("2.1.4"));
  EXPECT_EQ(m.at("cdiEnabled"), model::AttrValue::Bool(true));
  EXPECT_EQ(m.at("sharingMode"),
            model::AttrValue::String("Exclusive,TimeSlicing,SpacePartitioning"));

  m = AsMap(NodeAttributesFromNode(NodeWith("cri-o://1.31.02"), ContainerdConfig{}));
  EXPECT_EQ(m.at("containerRuntime"), model::AttrValue::String("cri-o"));
  EXPECT_EQ(m.at("containerRuntimeVersion"), model::AttrValue::Version("1.31.2"));
  EXPECT_EQ(m.at("containerRuntimeVersionRaw"), model::AttrValue::String("1.31.02"));
  EXPECT_EQ(m.at("cdiEnabled"), model::AttrValue::Bool(true));

  // Not a version: the raw string only, with a note; cdiEnabled unknown.
  a = NodeAttributesFromNode(NodeWith("remote://devel"), ContainerdConfig{});
  m = AsMap(a);
  EXPECT_EQ(m.at("containerRuntime"), model::AttrValue::String("remote"));
  EXPECT_EQ(m.count("containerRuntimeVersion"), 0u);
  EXPECT_EQ(m.at("containerRuntimeVersionRaw"), model::AttrValue::String("devel"));
  EXPECT_EQ(m.count("cdiEnabled"), 0u);
  ASSERT_EQ(a.notes.size(), 1u);
  EXPECT_NE(a.notes[0].find("devel"), std::string::npos);

  // No runtime info (a Node without kubelet), garbage, no Node: sharingMode only, a note.
  for (const Json& node :
       {NodeWith(""), NodeWith("garbage"), Json(nullptr), Json{{"metadata", {{"name", "x"}}}}}) {
    a = NodeAttributesFromNode(node, ContainerdConfig{});
    EXPECT_EQ(AsMap(a), AsMap(DriverOnlyAttributes())) << node.dump();
    EXPECT_EQ(a.notes.size(), 1u) << node.dump();
  }
  // A wrong JSON type is not a crash.
  Json bad = NodeWith("x");
  bad["status"]["nodeInfo"]["containerRuntimeVersion"] = 42;
  EXPECT_EQ(AsMap(NodeAttributesFromNode(bad, ContainerdConfig{})), AsMap(DriverOnlyAttributes()));
}

TEST(NodeRuntimeTest, AddedWithinTheLimit) {
  model::Device small;
  small.name = "gpu-0";
  small.attributes.emplace("type", model::AttrValue::String("gpu"));
  small.attributes.emplace("sharingMode",
                           model::AttrValue::String("Exclusive"));  // device's own wins
  model::Device full;
  full.name = "gpu-1";
  for (int i = 0; i < 29; ++i) {
    full.attributes.emplace("a" + std::to_string(i), model::AttrValue::Int(i));
  }
  full.capacity.emplace("memory", "1Gi");
  model::Inventory inv({small, full});
  auto extra = NodeAttributesFromNode(NodeWith("cri-o://1.31.02"), ContainerdConfig{});
  std::vector<std::string> left_out;
  model::Inventory out = WithNodeAttributes(inv, extra, 32, &left_out);
  const model::Device* s = out.Find("gpu-0");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->attributes.size(), 1u + 5u);
  EXPECT_EQ(s->attributes.at("sharingMode"), model::AttrValue::String("Exclusive"));
  const model::Device* f = out.Find("gpu-1");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->attributes.size() + f->capacity.size(), 32u);
  EXPECT_EQ(f->attributes.count("containerRuntime"), 1u);
  EXPECT_EQ(f->attributes.count("containerRuntimeVersion"), 1u);
  EXPECT_EQ(left_out,
            (std::vector<std::string>{"cdiEnabled", "sharingMode", "containerRuntimeVersionRaw"}));
}

}  // namespace
}  // namespace accel_dra::discovery
