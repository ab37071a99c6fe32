// CommandRunner: the real runner against small shell scripts.

#include "accel_dra/common/command.h"

#include <gtest/gtest.h>

using namespace std::chrono_literals;

namespace accel_dra {
namespace {

TEST(CommandRunner, ExitCodeAndOutput) {
  auto r = CommandRunner::Default()->Run({"sh", "-c", "echo out; echo err >&2; exit 3"}, 10s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_NE(r->output.find("out\n"), std::string::npos) << r->output;
  EXPECT_NE(r->output.find("err\n"), std::string::npos) << r->output;
}

TEST(CommandRunner, MissingProgramIsNotFound) {
  auto r = CommandRunner::Default()->Run({"accel-dra-no-such-program-xyz"}, 10s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("accel-dra-no-such-program-xyz"), std::string::npos);
}

TEST(CommandRunner, TimeoutKills) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = CommandRunner::Default()->Run({"sleep", "30"}, 200ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
}

TEST(CommandRunner, DisplayAndTail) {
  EXPECT_EQ(CommandLineForDisplay({"nvidia-smi", "-i", "GPU-1", "a b"}),
            "nvidia-smi -i GPU-1 'a b'");
  EXPECT_EQ(OutputTail("one\n\ntwo\nthree\nfour\n", 2), "three; four");
  EXPECT_EQ(OutputTail(""), "");
}

}  // namespace
}  // namespace accel_dra
