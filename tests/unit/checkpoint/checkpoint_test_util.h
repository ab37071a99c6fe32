#pragma once
// Shared helpers for the checkpoint tests: a per-test data directory and a fake host root holding
// /proc/sys/kernel/random/boot_id.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "accel_dra/checkpoint/checkpoint.h"

namespace accel_dra::checkpoint::testing {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using model::ClaimState;
using model::PreparedClaim;
using model::PreparedDevice;

inline constexpr const char* kBootA = "11111111-2222-4333-8444-555555555555";
inline constexpr const char* kBootB = "99999999-8888-4777-8666-555555555555";

inline OpenOptions LockTimeout(std::chrono::milliseconds timeout) {
  OpenOptions o;
  o.lock_timeout = timeout;
  return o;
}

inline TimePoint AtMs(int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }

inline std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteAll(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

inline PreparedClaim MakeClaim(const std::string& name, ClaimState state, int devices) {
  PreparedClaim c;
  c.ns = "default";
  c.name = name;
  c.state = state;
  c.cdi_spec_file = "k8s.accel-dra.dev-claim_" + name + ".yaml";
  c.prepare_started_at = AtMs(1750000000123);
  if (state == ClaimState::kPrepareCompleted) c.prepare_completed_at = AtMs(1750000000456);
  for (int i = 0; i < devices; ++i) {
    PreparedDevice d;
    d.request_names = {"req"};
    d.pool = "node-a";
    d.device = "accel-" + std::to_string(i);
    d.cdi_device_ids = {"k8s.accel-dra.dev/claim=" + name + "-accel-" + std::to_string(i)};
    d.sharing.strategy = model::SharingStrategy::kTimeSlicing;
    c.devices.push_back(std::move(d));
  }
  return c;
}

class CheckpointTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    root_ = fs::temp_directory_path() /
            ("ckpt-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(root_);
    data_ = root_ / "data";
    host_ = root_ / "host";
    SetBootId(kBootA);
  }
  void TearDown() override { fs::remove_all(root_); }

  void SetBootId(const std::string& id) {
    fs::create_directories(host_ / "proc/sys/kernel/random");
    WriteAll(host_ / "proc/sys/kernel/random/boot_id", id + "\n");
  }

  Expected<std::unique_ptr<Checkpoint>> TryOpen(Env* env = Env::Default(),
                                                OpenOptions options = {}) {
    return Checkpoint::Open(env, data_, HostRoot(host_), std::move(options));
  }

  // Opens or fails the test (returns null then).
  std::unique_ptr<Checkpoint> MustOpen(Env* env = Env::Default(), OpenOptions options = {}) {
    auto r = TryOpen(env, std::move(options));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    return std::move(r).value();
  }

  fs::path file() const { return data_ / "checkpoint.json"; }

  fs::path root_;
  fs::path data_;
  fs::path host_;
};

}  // namespace accel_dra::checkpoint::testing
