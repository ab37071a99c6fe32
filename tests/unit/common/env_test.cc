#include "accel_dra/common/env.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace accel_dra {
namespace {
namespace fs = std::filesystem;

class EnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("env-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  Env* env_ = Env::Default();
};

TEST_F(EnvTest, AtomicWriteReplacesAndLeavesNoTemp) {
  fs::path f = dir_ / "state.json";
  ASSERT_TRUE(env_->WriteFileAtomic(f, "one", 0600).ok());
  ASSERT_TRUE(env_->WriteFileAtomic(f, "two", 0600).ok());
  EXPECT_EQ(env_->ReadFile(f).value(), "two");
  EXPECT_EQ(env_->ListDir(dir_).value(), std::vector<std::string>{"state.json"});
  struct stat st {};
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(EnvTest, VisibleWriteIsAtomicToo) {
  fs::path f = dir_ / "spec.json";
  ASSERT_TRUE(env_->WriteFileAtomic(f, "one", 0644, Durability::kVisible).ok());
  ASSERT_TRUE(env_->WriteFileAtomic(f, "two", 0644, Durability::kVisible).ok());
  EXPECT_EQ(env_->ReadFile(f).value(), "two");
  EXPECT_EQ(env_->ListDir(dir_).value(), std::vector<std::string>{"spec.json"});
}

TEST_F(EnvTest, ErrorsAreValues) {
  auto r = env_->ReadFile(dir_ / "missing");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("missing"), std::string::npos);
  EXPECT_TRUE(env_->RemoveFile(dir_ / "missing").ok());
  auto w = env_->WriteFileAtomic(dir_ / "no" / "such" / "dir" / "f", "x");
  EXPECT_EQ(w.code(), Code::kNotFound);
}

TEST(HostRootTest, MapsAbsolutePaths) {
  HostRoot h("/fixtures/h100");
  EXPECT_EQ(h.Path("/sys/bus/pci").string(), "/fixtures/h100/sys/bus/pci");
  EXPECT_EQ(HostRoot().Sys().string(), "/sys");
}

}  // namespace
}  // namespace accel_dra
