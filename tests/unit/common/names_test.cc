#include "accel_dra/common/names.h"

#include <gtest/gtest.h>

namespace accel_dra {
namespace {

TEST(NamesTest, Semver) {
  for (const char* ok : {"1.0.0", "0.0.0", "10.20.30", "1.2.3-rc.1", "1.2.3-0a.1", "1.2.3+build.5",
                         "535.104.5", "1.0.0-alpha+001", "18446744073709551615.0.0"}) {
    EXPECT_TRUE(IsSemver(ok)) << ok;
  }
  for (const char* bad : {"", "1", "1.0", "v1.0.0", "01.0.0", "1.02.0", "1.0.0-", "1.0.0+",
                          "1.0.0-01", "1.0.0-a..b", "1.0.0 ", "1.0.0_x", "535.104.05",
                          "18446744073709551616.0.0", "99999999999999999999999.1.2"}) {
    EXPECT_FALSE(IsSemver(bad)) << bad;
  }
}

TEST(NamesTest, DnsAndIdentifiers) {
  EXPECT_TRUE(IsDnsLabel("gpu-0"));
  EXPECT_FALSE(IsDnsLabel("GPU-0"));
  EXPECT_FALSE(IsDnsLabel("-gpu"));
  EXPECT_FALSE(IsDnsLabel(std::string(64, 'a')));
  EXPECT_TRUE(IsDnsSubdomain("accel-dra.dev"));
  EXPECT_FALSE(IsDnsSubdomain("accel-dra..dev"));
  EXPECT_TRUE(IsCIdentifier("driverVersion"));
  EXPECT_FALSE(IsCIdentifier("0abc"));
  EXPECT_FALSE(IsCIdentifier("a-b"));
}

}  // namespace
}  // namespace accel_dra
