// InitLogging: text and JSON lines; JSON escapes the message and lifts a named claim into fields.

#include "accel_dra/common/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace accel_dra {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { spdlog::set_default_logger(previous_); }
  std::shared_ptr<spdlog::logger> previous_ = spdlog::default_logger();
};

TEST_F(LogTest, JsonLinesAreObjectsWithTheClaimAsFields) {
  testing::internal::CaptureStderr();
  InitLogging(1, /*json=*/true);
  spdlog::warn("prepare of ResourceClaim ns-a/claim-b (uid 1234-5678) failed: bad \"quote\"\n\tx");
  LOG_V(1, "prepared ResourceClaim ns/c (uid u-1): 1 devices in 10 us");
  LOG_V(2, "not shown at -v=1");
  spdlog::info("no claim here; ResourceClaim without uid");
  auto lines = Lines(testing::internal::GetCapturedStderr());
  ASSERT_EQ(lines.size(), 3u);
  auto first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["level"], "warning");
  EXPECT_EQ(first["msg"],
            "prepare of ResourceClaim ns-a/claim-b (uid 1234-5678) failed: bad \"quote\"\n\tx");
  EXPECT_EQ(first["claim"], "ns-a/claim-b");
  EXPECT_EQ(first["claimUID"], "1234-5678");
  EXPECT_THAT(first["ts"].get<std::string>(),
              MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{6}Z"));
  auto second = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(second["claim"], "ns/c");
  EXPECT_EQ(second["claimUID"], "u-1");
  auto third = nlohmann::json::parse(lines[2]);
  EXPECT_FALSE(third.contains("claim"));
}

TEST_F(LogTest, TextLinesAndReinitialisation) {
  testing::internal::CaptureStderr();
  InitLogging(0, /*json=*/false);
  InitLogging(0, /*json=*/false);  // a second call replaces the first
  spdlog::info("hello ResourceClaim a/b (uid c)");
  auto lines = Lines(testing::internal::GetCapturedStderr());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0],
              MatchesRegex("[0-9]{6} [0-9:]{8}\\.[0-9]{6} I hello ResourceClaim a/b \\(uid c\\)"));
}

}  // namespace
}  // namespace accel_dra
