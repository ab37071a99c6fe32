// The one version policy (discovery/version.h) used by PCI/sysfs, NVML, the container runtime and
// simulated profiles.

#include "accel_dra/discovery/version.h"

#include <gtest/gtest.h>

#include "accel_dra/common/names.h"

namespace accel_dra::discovery {
namespace {

TEST(VersionTest, StrictSemverIsKept) {
  EXPECT_EQ(NormalizeVersion("550.54.15"), "550.54.15");
  EXPECT_EQ(NormalizeVersion("6.8.0-rc1"), "6.8.0-rc1");
  EXPECT_EQ(NormalizeVersion("1.17.0-ef3d8b7"), "1.17.0-ef3d8b7");
  EXPECT_EQ(NormalizeVersion("2.1.4+build.007"), "2.1.4+build.007");
  EXPECT_EQ(NormalizeVersion("1.7.27-k3s1"), "1.7.27-k3s1");
}

TEST(VersionTest, PaddedAndZerosStripped) {
  EXPECT_EQ(NormalizeVersion("535.104.05"), "535.104.5");
  EXPECT_EQ(NormalizeVersion("560.35"), "560.35.0");
  EXPECT_EQ(NormalizeVersion("550.54.03"), "550.54.3");
  EXPECT_EQ(NormalizeVersion("7"), "7.0.0");
  EXPECT_EQ(NormalizeVersion("007.01.0"), "7.1.0");
  EXPECT_EQ(NormalizeVersion(" 6.8.0-rc1\n"), "6.8.0-rc1");
  EXPECT_EQ(NormalizeVersion("v1.2-beta"), "1.2.0-beta");
  EXPECT_EQ(NormalizeVersion("V2.0.0"), "2.0.0");
  EXPECT_EQ(NormalizeVersion("1.2.3-rc.01+build.007"), "1.2.3-rc.1+build.007");
}

TEST(VersionTest, LeadingNumericPrefixOnly) {
  // Only three components are kept; whatever follows a fourth is dropped.
  EXPECT_EQ(NormalizeVersion("1.2.3.4"), "1.2.3");
  EXPECT_EQ(NormalizeVersion("1.2.3.4-beta"), "1.2.3");
  // A suffix that is not a semver prerelease/build is dropped.
  EXPECT_EQ(NormalizeVersion("550.54.beta"), "550.54.0");
  EXPECT_EQ(NormalizeVersion("2.1.4~ubuntu1"), "2.1.4");
  EXPECT_EQ(NormalizeVersion("1.2 beta"), "1.2.0");
  EXPECT_EQ(NormalizeVersion("1..2"), "1.0.0");
  EXPECT_EQ(NormalizeVersion("1.2-"), "1.2.0");
  EXPECT_EQ(NormalizeVersion("1.2.3-rc..1"), "1.2.3");
}

TEST(VersionTest, NoVersion) {
  EXPECT_EQ(NormalizeVersion(""), std::nullopt);
  EXPECT_EQ(NormalizeVersion("   "), std::nullopt);
  EXPECT_EQ(NormalizeVersion("custom build"), std::nullopt);
  EXPECT_EQ(NormalizeVersion("r550"), std::nullopt);
  EXPECT_EQ(NormalizeVersion("v"), std::nullopt);
  EXPECT_EQ(NormalizeVersion(".1.2"), std::nullopt);
  EXPECT_EQ(NormalizeVersion("99999999999999999999999.1"), std::nullopt);
  EXPECT_EQ(NormalizeVersion("1.2.9999999999999999999"), std::nullopt);
}

TEST(VersionTest, ResultIsAlwaysStrictSemver) {
  for (const char* s :
       {"550.54.15", "535.104.05", "1.2", "v1.2-beta", "1.2.3-rc.01+b.007", "1.2.3.4", "1..2",
        "2.1.4~ubuntu1", "0.0.0", "000", "1.2.3-", "1.2.3+", "1.2.3-a+", "1-x.01", "3.2\x01"}) {
    auto n = NormalizeVersion(s);
    ASSERT_TRUE(n.has_value()) << s;
    EXPECT_TRUE(IsSemver(*n)) << s << " → " << *n;
    EXPECT_LE(n->size(), 64u) << s;
  }
  // A long but valid suffix that would exceed 64 characters is dropped, not cut.
  std::string long_pre = "1.2.3-" + std::string(70, 'a');
  EXPECT_EQ(NormalizeVersion(long_pre), "1.2.3");
}

TEST(VersionTest, SetVersionAttributePublishesRawWhenDifferent) {
  std::map<std::string, model::AttrValue> a;
  EXPECT_EQ(SetVersionAttribute(a, "driverVersion", "550.54.15\n"), VersionOutcome::kExact);
  EXPECT_EQ(a.at("driverVersion"), model::AttrValue::Version("550.54.15"));
  EXPECT_EQ(a.count("driverVersionRaw"), 0u);

  EXPECT_EQ(SetVersionAttribute(a, "driverVersion", "550.54.03"), VersionOutcome::kNormalized);
  EXPECT_EQ(a.at("driverVersion"), model::AttrValue::Version("550.54.3"));
  EXPECT_EQ(a.at("driverVersionRaw"), model::AttrValue::String("550.54.03"));

  EXPECT_EQ(SetVersionAttribute(a, "driverVersion", "custom build"), VersionOutcome::kRawOnly);
  EXPECT_EQ(a.count("driverVersion"), 0u);
  EXPECT_EQ(a.at("driverVersionRaw"), model::AttrValue::String("custom build"));

  // Back to an exact version: the stale Raw goes away.
  EXPECT_EQ(SetVersionAttribute(a, "driverVersion", "1.0.0"), VersionOutcome::kExact);
  EXPECT_EQ(a.count("driverVersionRaw"), 0u);

  EXPECT_EQ(SetVersionAttribute(a, "driverVersion", " "), VersionOutcome::kAbsent);
  EXPECT_TRUE(a.empty());

  EXPECT_EQ(SetVersionAttribute(a, "v", "1.2.3\x07"), VersionOutcome::kUnprintable);
  EXPECT_EQ(a.at("v"), model::AttrValue::Version("1.2.3"));
  EXPECT_EQ(a.count("vRaw"), 0u);
  // Not UTF-8 (found by tests/fuzz/version_fuzz): the raw string cannot go into a JSON body.
  a.clear();
  EXPECT_EQ(SetVersionAttribute(a, "v", "cu\xe4tom build"), VersionOutcome::kUnprintable);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(SetVersionAttribute(a, "v", "2.0 \xc3\xa9t\xc3\xa9"), VersionOutcome::kNormalized);
  EXPECT_EQ(a.at("vRaw"), model::AttrValue::String("2.0 \xc3\xa9t\xc3\xa9"));

  // A raw string longer than an attribute value may be is cut to 64 bytes.
  a.clear();
  std::string long_raw = "2.0.0 " + std::string(100, 'x');
  EXPECT_EQ(SetVersionAttribute(a, "containerRuntimeVersion", long_raw),
            VersionOutcome::kNormalized);
  EXPECT_LE(a.at("containerRuntimeVersionRaw").string_value().size(), 64u);
}

}  // namespace
}  // namespace accel_dra::discovery
