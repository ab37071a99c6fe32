// DeviceConfig parsing: happy paths, defaults and every error class.

#include "accel_dra/config/device_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace accel_dra::config {
namespace {

using nlohmann::json;

json Base() { return json{{"apiVersion", "accel-dra.dev/v1alpha1"}, {"kind", "DeviceConfig"}}; }

json WithSharing(json sharing) {
  json j = Base();
  j["sharing"] = std::move(sharing);
  return j;
}

void ExpectError(const json& params, std::initializer_list<std::string_view> fragments) {
  auto r = ParseDeviceConfig(params);
  ASSERT_FALSE(r.ok()) << params.dump();
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
  for (auto f : fragments) {
    EXPECT_NE(r.status().message().find(f), std::string::npos)
        << "message \"" << r.status().message() << "\" lacks \"" << f << "\"";
  }
}

TEST(ConfigParse, MinimalIsExclusive) {
  auto r = ParseDeviceConfig(Base());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->strategy, SharingStrategy::kExclusive);
  EXPECT_EQ(r->StrategyName(), "Exclusive");
  EXPECT_EQ(r->IntervalName(), "");
  EXPECT_EQ(r->PartitionCountString(), "");
  EXPECT_EQ(*r, DeviceConfig{});
  // Empty sharing, explicit Exclusive and nulls mean the same.
  EXPECT_EQ(ParseDeviceConfig(WithSharing(json::object())).value(), DeviceConfig{});
  EXPECT_EQ(ParseDeviceConfig(WithSharing({{"strategy", "Exclusive"}})).value(), DeviceConfig{});
  EXPECT_EQ(ParseDeviceConfig(WithSharing(nullptr)).value(), DeviceConfig{});
  EXPECT_EQ(
      ParseDeviceConfig(WithSharing({{"strategy", nullptr}, {"timeSlicing", nullptr}})).value(),
      DeviceConfig{});
}

TEST(ConfigParse, TimeSlicing) {
  auto r = ParseDeviceConfig(WithSharing({{"strategy", "TimeSlicing"}}));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->strategy, SharingStrategy::kTimeSlicing);
  EXPECT_EQ(r->interval, TimeSliceInterval::kDefault);
  EXPECT_EQ(r->IntervalName(), "Default");
  EXPECT_EQ(r->PartitionCountString(), "");
  for (const char* interval : {"Default", "Short", "Medium", "Long"}) {
    auto t = ParseDeviceConfig(
        WithSharing({{"strategy", "TimeSlicing"}, {"timeSlicing", {{"interval", interval}}}}));
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(t->IntervalName(), interval);
    EXPECT_EQ(t->StrategyName(), "TimeSlicing");
  }
  auto empty_ts = ParseDeviceConfig(
      WithSharing({{"strategy", "TimeSlicing"}, {"timeSlicing", json::object()}}));
  ASSERT_TRUE(empty_ts.ok());
  EXPECT_EQ(empty_ts->interval, TimeSliceInterval::kDefault);
}

TEST(ConfigParse, SpacePartitioning) {
  for (int n : {2, 7, 16}) {
    auto r = ParseDeviceConfig(WithSharing(
        {{"strategy", "SpacePartitioning"}, {"spacePartitioning", {{"partitionCount", n}}}}));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->strategy, SharingStrategy::kSpacePartitioning);
    EXPECT_EQ(r->partition_count, n);
    EXPECT_EQ(r->PartitionCountString(), std::to_string(n));
    EXPECT_EQ(r->IntervalName(), "");
    EXPECT_EQ(r->StrategyName(), "SpacePartitioning");
  }
}

TEST(ConfigParse, FromJsonText) {
  auto r = ParseDeviceConfigJson(R"({"apiVersion":"accel-dra.dev/v1alpha1","kind":"DeviceConfig",
      "sharing":{"strategy":"TimeSlicing","timeSlicing":{"interval":"Short"}}})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->interval, TimeSliceInterval::kShort);
  auto bad = ParseDeviceConfigJson("{\"apiVersion\":");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("not valid JSON"), std::string::npos);
}

TEST(ConfigParse, ApiVersionAndKind) {
  ExpectError(json::array(), {"must be a JSON object", "array"});
  ExpectError(json{{"kind", "DeviceConfig"}},
              {"apiVersion: required field is missing", "accel-dra.dev/v1alpha1"});
  ExpectError(json{{"apiVersion", "accel-dra.dev/v1alpha1"}},
              {"kind: required field is missing", "DeviceConfig"});
  json v = Base();
  v["apiVersion"] = "accel-dra.dev/v1";
  ExpectError(v, {"apiVersion", "\"accel-dra.dev/v1\" is not supported",
                  "supported apiVersion is accel-dra.dev/v1alpha1"});
  json other = Base();
  other["apiVersion"] = "gpu.resource.example.com/v1alpha1";
  ExpectError(other, {"gpu.resource.example.com/v1alpha1", "accel-dra.dev/v1alpha1"});
  json k = Base();
  k["kind"] = "GpuConfig";
  ExpectError(k, {"kind", "\"GpuConfig\" is not supported", "supported kind is DeviceConfig"});
  json t = Base();
  t["kind"] = 3;
  ExpectError(t, {"kind: must be a string, got number 3"});
}

TEST(ConfigParse, UnknownFieldsNameThePathAndSuggest) {
  json top = Base();
  top["sharng"] = json::object();
  ExpectError(top, {"sharng: unknown field", "did you mean sharing?"});
  json meta = Base();
  meta["metadata"] = json::object();
  ExpectError(meta, {"metadata: unknown field", "known fields: apiVersion, kind, sharing"});
  ExpectError(WithSharing({{"strategy", "TimeSlicing"}, {"timeslicing", json::object()}}),
              {"sharing.timeslicing: unknown field", "did you mean timeSlicing?",
               "known fields of sharing: strategy, timeSlicing, spacePartitioning"});
  ExpectError(WithSharing({{"timeSlicingConfig", json::object()}}),
              {"sharing.timeSlicingConfig: unknown field"});
  ExpectError(WithSharing({{"strategy", "TimeSlicing"}, {"timeSlicing", {{"intervall", "Short"}}}}),
              {"sharing.timeSlicing.intervall: unknown field", "did you mean interval?"});
  ExpectError(
      WithSharing({{"strategy", "SpacePartitioning"}, {"spacePartitioning", {{"partitions", 2}}}}),
      {"sharing.spacePartitioning.partitions: unknown field"});
}

TEST(ConfigParse, WrongTypes) {
  ExpectError(WithSharing("TimeSlicing"), {"sharing: must be an object, got string"});
  ExpectError(WithSharing({{"strategy", 1}}),
              {"sharing.strategy: must be a string, got number 1",
               "accepted values: Exclusive, TimeSlicing, SpacePartitioning"});
  ExpectError(WithSharing({{"strategy", "TimeSlicing"}, {"timeSlicing", "Short"}}),
              {"sharing.timeSlicing: must be an object"});
  ExpectError(WithSharing({{"strategy", "TimeSlicing"}, {"timeSlicing", {{"interval", true}}}}),
              {"sharing.timeSlicing.interval: must be a string, got boolean",
               "Default, Short, Medium, Long"});
  ExpectError(WithSharing({{"strategy", "SpacePartitioning"},
                           {"spacePartitioning", {{"partitionCount", "4"}}}}),
              {"sharing.spacePartitioning.partitionCount: must be an integer, got string",
               "integers 2..16"});
  ExpectError(WithSharing({{"strategy", "SpacePartitioning"},
                           {"spacePartitioning", {{"partitionCount", 4.5}}}}),
              {"partitionCount: must be an integer, got number 4.5"});
}

TEST(ConfigParse, BadEnumValues) {
  ExpectError(WithSharing({{"strategy", "MPS"}}),
              {"sharing.strategy: unknown value \"MPS\"",
               "accepted values: Exclusive, TimeSlicing, SpacePartitioning"});
  ExpectError(WithSharing({{"strategy", "timeslicing"}}), {"did you mean TimeSlicing?"});
  ExpectError(WithSharing({{"strategy", "TimeSlicing"}, {"timeSlicing", {{"interval", "Huge"}}}}),
              {"sharing.timeSlicing.interval: unknown value \"Huge\"",
               "accepted values: Default, Short, Medium, Long"});
}

TEST(ConfigParse, SettingsForAnotherStrategy) {
  ExpectError(WithSharing({{"timeSlicing", {{"interval", "Short"}}}}),
              {"sharing.timeSlicing: only allowed when sharing.strategy is TimeSlicing",
               "(it is Exclusive)"});
  ExpectError(WithSharing({{"strategy", "SpacePartitioning"},
                           {"spacePartitioning", {{"partitionCount", 2}}},
                           {"timeSlicing", json::object()}}),
              {"sharing.timeSlicing", "(it is SpacePartitioning)"});
  ExpectError(
      WithSharing({{"strategy", "TimeSlicing"}, {"spacePartitioning", {{"partitionCount", 2}}}}),
      {"sharing.spacePartitioning: only allowed when sharing.strategy is SpacePartitioning",
       "(it is TimeSlicing)"});
}

TEST(ConfigParse, PartitionCountRange) {
  for (json n : {json(1), json(0), json(-3), json(17), json(1000000000000LL),
                 json(18446744073709551615ULL)}) {
    ExpectError(WithSharing({{"strategy", "SpacePartitioning"},
                             {"spacePartitioning", {{"partitionCount", n}}}}),
                {"sharing.spacePartitioning.partitionCount", "is out of range",
                 "accepted values: integers 2..16"});
  }
  ExpectError(WithSharing({{"strategy", "SpacePartitioning"}}),
              {"sharing.spacePartitioning.partitionCount: required when sharing.strategy is "
               "SpacePartitioning",
               "2..16"});
  ExpectError(
      WithSharing({{"strategy", "SpacePartitioning"}, {"spacePartitioning", json::object()}}),
      {"partitionCount: required"});
}

TEST(ConfigNames, EnumNames) {
  EXPECT_EQ(SharingStrategyName(SharingStrategy::kSpacePartitioning), "SpacePartitioning");
  EXPECT_EQ(TimeSliceIntervalName(TimeSliceInterval::kMedium), "Medium");
}

}  // namespace
}  // namespace accel_dra::config
