// Config resolution against status.allocation.devices.config[].

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "accel_dra/config/device_config.h"

namespace accel_dra::config {
namespace {

using nlohmann::json;
constexpr const char* kDriver = "accel-dra.dev";

json Params(const std::string& strategy, int count = 0) {
  json p = {{"apiVersion", "accel-dra.dev/v1alpha1"}, {"kind", "DeviceConfig"}};
  p["sharing"]["strategy"] = strategy;
  if (strategy == "SpacePartitioning") p["sharing"]["spacePartitioning"]["partitionCount"] = count;
  return p;
}

json Entry(const std::string& source, std::vector<std::string> requests, json params,
           const std::string& driver = kDriver) {
  json e = {{"source", source},
            {"opaque", {{"driver", driver}, {"parameters", std::move(params)}}}};
  if (!requests.empty()) e["requests"] = requests;
  return e;
}

std::map<std::string, std::string> Strategies(const json& configs,
                                              const std::vector<std::string>& requests) {
  auto r = ResolveDeviceConfigs(configs, requests, kDriver);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  std::map<std::string, std::string> out;
  if (!r.ok()) return out;
  for (const auto& [k, v] : *r) {
    out[k] = v.StrategyName() + (v.partition_count ? std::to_string(v.partition_count) : "");
  }
  return out;
}

TEST(ConfigResolve, NoConfigMeansExclusive) {
  EXPECT_EQ(Strategies(json::array(), {"a", "b/c"}),
            (std::map<std::string, std::string>{{"a", "Exclusive"}, {"b/c", "Exclusive"}}));
  EXPECT_EQ(Strategies(nullptr, {"a"}), (std::map<std::string, std::string>{{"a", "Exclusive"}}));
}

TEST(ConfigResolve, OtherDriversAndNonOpaqueAreSkipped) {
  json other_params = {{"whatever", true}};  // invalid for us, but not ours
  json configs = json::array({
      Entry("FromClaim", {}, other_params, "gpu.example.com"),
      json{{"source", "FromClaim"}, {"requests", {"a"}}},  // no opaque: another config kind
      Entry("FromClass", {"a"}, Params("TimeSlicing")),
  });
  EXPECT_EQ(Strategies(configs, {"a"}), (std::map<std::string, std::string>{{"a", "TimeSlicing"}}));
}

TEST(ConfigResolve, ClaimBeatsClass) {
  json configs = json::array({
      Entry("FromClaim", {}, Params("SpacePartitioning", 4)),  // claim, all requests
      Entry("FromClass", {"a"}, Params("TimeSlicing")),        // class, names a (later!)
  });
  EXPECT_EQ(Strategies(configs, {"a", "b"}),
            (std::map<std::string, std::string>{{"a", "SpacePartitioning4"},
                                                {"b", "SpacePartitioning4"}}));
  json class_only = json::array({Entry("FromClass", {}, Params("TimeSlicing"))});
  EXPECT_EQ(Strategies(class_only, {"a"}),
            (std::map<std::string, std::string>{{"a", "TimeSlicing"}}));
}

TEST(ConfigResolve, SpecificBeatsAllWithinASource) {
  json configs = json::array({
      Entry("FromClaim", {"a"}, Params("TimeSlicing")),
      Entry("FromClaim", {}, Params("SpacePartitioning", 2)),  // later, but applies to all
  });
  EXPECT_EQ(
      Strategies(configs, {"a", "b"}),
      (std::map<std::string, std::string>{{"a", "TimeSlicing"}, {"b", "SpacePartitioning2"}}));
}

TEST(ConfigResolve, LaterWinsAtEqualRank) {
  json configs = json::array({
      Entry("FromClaim", {"a"}, Params("TimeSlicing")),
      Entry("FromClaim", {"b", "a"}, Params("SpacePartitioning", 3)),
      Entry("FromClass", {}, Params("TimeSlicing")),
      Entry("FromClass", {}, Params("SpacePartitioning", 5)),
  });
  EXPECT_EQ(
      Strategies(configs, {"a", "b", "c"}),
      (std::map<std::string, std::string>{
          {"a", "SpacePartitioning3"}, {"b", "SpacePartitioning3"}, {"c", "SpacePartitioning5"}}));
}

TEST(ConfigResolve, Subrequests) {
  json configs = json::array({
      Entry("FromClaim", {"main/big"}, Params("SpacePartitioning", 8)),  // exact
      Entry("FromClaim", {"main"}, Params("TimeSlicing")),               // base, later
      Entry("FromClaim", {"main/other"}, Params("SpacePartitioning", 2)),
  });
  EXPECT_EQ(Strategies(configs, {"main/big", "main/small", "main", "mainx/big"}),
            (std::map<std::string, std::string>{{"main/big", "SpacePartitioning8"},
                                                {"main/small", "TimeSlicing"},
                                                {"main", "TimeSlicing"},
                                                {"mainx/big", "Exclusive"}}));
  // A config naming a subrequest does not apply to the plain main request.
  json sub_only = json::array({Entry("FromClaim", {"main/big"}, Params("TimeSlicing"))});
  EXPECT_EQ(Strategies(sub_only, {"main"}),
            (std::map<std::string, std::string>{{"main", "Exclusive"}}));
}

TEST(ConfigResolve, InvalidConfigIsAnErrorEvenWhenOverridden) {
  json bad = Params("TimeSlicing");
  bad["sharing"]["strategy"] = "Sometimes";
  json configs = json::array({
      Entry("FromClass", {"a"}, bad),  // overridden by the claim config below
      Entry("FromClaim", {"a"}, Params("TimeSlicing")),
  });
  auto r = ResolveDeviceConfigs(configs, {"a"}, kDriver);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("invalid config for driver accel-dra.dev"), std::string::npos) << m;
  EXPECT_NE(m.find("status.allocation.devices.config[0]"), std::string::npos) << m;
  EXPECT_NE(m.find("from the DeviceClass"), std::string::npos) << m;
  EXPECT_NE(m.find("requests: a"), std::string::npos) << m;
  EXPECT_NE(m.find("sharing.strategy: unknown value \"Sometimes\""), std::string::npos) << m;
}

TEST(ConfigResolve, InvalidConfigForAnUnusedRequestIsAnError) {
  json bad = Params("Exclusive");
  bad["apiVersion"] = "accel-dra.dev/v2";
  json configs = json::array({Entry("FromClaim", {"unused"}, bad)});
  auto r = ResolveDeviceConfigs(configs, {"a"}, kDriver);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("from the ResourceClaim, requests: unused"),
            std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("accel-dra.dev/v1alpha1"), std::string::npos);
  // Missing parameters are invalid too.
  json no_params = {{"source", "FromClaim"}, {"opaque", {{"driver", kDriver}}}};
  EXPECT_FALSE(ResolveDeviceConfigs(json::array({no_params}), {"a"}, kDriver).ok());
}

TEST(ConfigResolve, MalformedEntries) {
  auto expect_error = [](const json& configs, std::string_view what) {
    auto r = ResolveDeviceConfigs(configs, {"a"}, kDriver);
    ASSERT_FALSE(r.ok()) << configs.dump();
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
  };
  expect_error(json::object(), "must be an array");
  expect_error(json::array({1}), "config[0] must be an object");
  expect_error(json::array({Entry("FromSomewhere", {}, Params("Exclusive"))}),
               "source must be FromClass or FromClaim");
  json bad_requests = Entry("FromClaim", {}, Params("Exclusive"));
  bad_requests["requests"] = "a";
  expect_error(json::array({bad_requests}), "requests must be an array");
  expect_error(json::array({json{{"source", "FromClaim"}, {"opaque", "x"}}}),
               "opaque must be an object");
}

TEST(ConfigResolve, FromAllocation) {
  json devices = {
      {"results",
       {
           {{"request", "gpu"}, {"driver", kDriver}, {"pool", "node-a"}, {"device", "accel-0"}},
           {{"request", "gpu"}, {"driver", kDriver}, {"pool", "node-a"}, {"device", "accel-1"}},
           {{"request", "nic"}, {"driver", "net.example.com"}, {"pool", "p"}, {"device", "eth0"}},
           {{"request", "fast/big"},
            {"driver", kDriver},
            {"pool", "node-a"},
            {"device", "accel-2"}},
       }},
      {"config",
       {
           Entry("FromClass", {}, Params("TimeSlicing")),
           Entry("FromClaim", {"fast"}, Params("SpacePartitioning", 4)),
           Entry("FromClaim", {"nic"}, json{{"rate", 1}}, "net.example.com"),
       }},
  };
  auto r = ResolveAllocationConfigs(devices, kDriver);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);  // only our requests, each once
  EXPECT_EQ(r->at("gpu").StrategyName(), "TimeSlicing");
  EXPECT_EQ(r->at("gpu").IntervalName(), "Default");
  EXPECT_EQ(r->at("fast/big").PartitionCountString(), "4");

  json no_config = {{"results", devices["results"]}};
  auto d = ResolveAllocationConfigs(no_config, kDriver);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->at("gpu"), DeviceConfig{});

  EXPECT_FALSE(ResolveAllocationConfigs(json::array(), kDriver).ok());
  json bad_result = {{"results", {{{"driver", kDriver}}}}};
  auto b = ResolveAllocationConfigs(bad_result, kDriver);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("results[0].request"), std::string::npos);
}

}  // namespace
}  // namespace accel_dra::config
