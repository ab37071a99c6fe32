#include "accel_dra/common/yaml.h"

#include <gtest/gtest.h>

namespace accel_dra {
namespace {

TEST(YamlTest, QuotesWhatWouldReadBackAsAnotherType) {
  nlohmann::json j = {
      {"bus", "0000:10:00.0"}, {"ver", "1.0.0"}, {"n", "80"},    {"b", "true"}, {"e", ""},
      {"plain", "gpu-0"},      {"int", 3},       {"flag", false}};
  std::string y = JsonToYaml(j);
  EXPECT_NE(y.find("bus: \"0000:10:00.0\""), std::string::npos) << y;
  EXPECT_NE(y.find("ver: \"1.0.0\""), std::string::npos) << y;
  EXPECT_NE(y.find("n: \"80\""), std::string::npos) << y;
  EXPECT_NE(y.find("b: \"true\""), std::string::npos) << y;
  EXPECT_NE(y.find("e: \"\""), std::string::npos) << y;
  EXPECT_NE(y.find("plain: gpu-0"), std::string::npos) << y;
  EXPECT_NE(y.find("int: 3"), std::string::npos) << y;
  EXPECT_NE(y.find("flag: false"), std::string::npos) << y;
}

}  // namespace
}  // namespace accel_dra
