// Group commit and write failures.

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <iostream>
#include <latch>
#include <mutex>
#include <thread>
#include <vector>

#include "accel_dra/checkpoint/checkpoint.h"
#include "checkpoint_test_util.h"

namespace accel_dra::checkpoint::testing {
namespace {

// Counts checkpoint writes and makes each take a while, like an fsync on a busy disk.
class SlowCountingEnv : public Env {
 public:
  Status WriteFileAtomic(const fs::path& path, std::string_view data, mode_t mode,
                         Durability durability) override {
    writes.fetch_add(1);
    std::this_thread::sleep_for(delay);
    return Env::WriteFileAtomic(path, data, mode, durability);
  }
  std::atomic<int> writes{0};
  std::chrono::milliseconds delay{20};
};

// Fails checkpoint writes with ENOSPC while `full` is set.
class DiskFullEnv : public Env {
 public:
  Status WriteFileAtomic(const fs::path& path, std::string_view data, mode_t mode,
                         Durability durability) override {
    writes.fetch_add(1);
    if (full.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return ErrnoStatus("write " + path.string(), ENOSPC);
    }
    return Env::WriteFileAtomic(path, data, mode, durability);
  }
  std::atomic<bool> full{false};
  std::atomic<int> writes{0};
};

bool FileHasClaim(const fs::path& file, const std::string& uid) {
  auto content = Env::Default()->ReadFile(file);
  if (!content.ok()) return false;
  Json doc = Json::parse(*content, nullptr, /*allow_exceptions=*/false);
  return doc.is_object() && doc["data"]["claims"].contains(uid);
}

class CheckpointConcurrencyTest : public CheckpointTestBase {};

TEST_F(CheckpointConcurrencyTest, GroupCommitSharesWritesAmong64Updaters) {
  constexpr int kThreads = 64;
  SlowCountingEnv env;
  auto cp = MustOpen(&env);
  ASSERT_NE(cp, nullptr);

  std::latch start(kThreads);
  std::atomic<int> failed{0};
  std::atomic<int> not_durable_on_return{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      const std::string uid = "uid-" + std::to_string(i);
      start.arrive_and_wait();
      Status st = cp->Update([&](State& s) {
        s.claims[uid] = MakeClaim("c" + std::to_string(i), ClaimState::kPrepareCompleted, 1);
      });
      if (!st.ok()) failed.fetch_add(1);
      // Durable before the answer: the file on disk already holds this mutation.
      if (!FileHasClaim(cp->file_path(), uid)) not_durable_on_return.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();

  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(not_durable_on_return.load(), 0);
  const int writes = env.writes.load();
  std::cout << "[ checkpoint ] " << kThreads << " concurrent updates -> " << writes
            << " file writes\n";
  RecordProperty("file_writes", writes);
  EXPECT_LE(writes, 16) << "group commit should share writes";
  EXPECT_EQ(cp->stats().writes, static_cast<uint64_t>(writes));
  EXPECT_EQ(cp->stats().updates, static_cast<uint64_t>(kThreads));
  EXPECT_FALSE(cp->dirty());

  cp.reset();
  auto again = MustOpen();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->Snapshot().claims.size(), static_cast<size_t>(kThreads));
}

TEST_F(CheckpointConcurrencyTest, MixedUpdatesSnapshotsAndSyncs) {
  // Removal and re-adding from many threads, with readers; the final state is deterministic.
  DiskFullEnv env;  // never full: plain writes, counted
  auto cp = MustOpen(&env);
  ASSERT_NE(cp, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const std::string uid = "uid-" + std::to_string(t) + "-" + std::to_string(i % 5);
        EXPECT_TRUE(cp->Update([&](State& s) {
                        if (s.claims.erase(uid) == 0) {
                          s.claims[uid] = MakeClaim(uid, ClaimState::kPrepareStarted, 0);
                        }
                      }).ok());
        (void)cp->Snapshot();
        (void)cp->Find(uid);
        EXPECT_TRUE(cp->Sync().ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  // Each uid toggled 4 times -> absent.
  EXPECT_TRUE(cp->Snapshot().claims.empty());
  cp.reset();
  EXPECT_TRUE(MustOpen()->Snapshot().claims.empty());
}

TEST_F(CheckpointConcurrencyTest, DiskFullFailsCallersAndALaterWritePersistsEverything) {
  DiskFullEnv env;
  auto cp = MustOpen(&env);
  ASSERT_NE(cp, nullptr);
  ASSERT_TRUE(cp->Update([](State& s) {
                  s.claims["uid-before"] = MakeClaim("before", ClaimState::kPrepareCompleted, 1);
                }).ok());
  const std::string on_disk_before = ReadAll(cp->file_path());

  env.full = true;
  constexpr int kThreads = 8;
  std::latch start(kThreads);
  std::atomic<int> exhausted{0};
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      Status st = cp->Update([&](State& s) {
        s.claims["uid-full-" + std::to_string(i)] =
            MakeClaim("full" + std::to_string(i), ClaimState::kPrepareStarted, 0);
      });
      if (st.code() == Code::kResourceExhausted &&
          st.message().find("No space left on device") != std::string::npos) {
        exhausted.fetch_add(1);
      } else {
        other.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(exhausted.load(), kThreads);
  EXPECT_EQ(other.load(), 0);
  EXPECT_GE(cp->stats().failed_writes, 1u);

  // Memory is ahead of the disk and says so.
  EXPECT_TRUE(cp->dirty());
  EXPECT_EQ(cp->Snapshot().claims.size(), 1u + kThreads);
  EXPECT_EQ(ReadAll(cp->file_path()), on_disk_before);

  // Sync retries (it does not replay the old error without trying), and fails while still full.
  const int writes_before_sync = env.writes.load();
  EXPECT_EQ(cp->Sync().code(), Code::kResourceExhausted);
  EXPECT_EQ(env.writes.load(), writes_before_sync + 1);

  // Space is back: the next update persists its own mutation and everything before it.
  env.full = false;
  ASSERT_TRUE(cp->Update([](State& s) {
                  s.claims["uid-after"] = MakeClaim("after", ClaimState::kPrepareStarted, 0);
                }).ok());
  EXPECT_FALSE(cp->dirty());
  cp.reset();
  auto again = MustOpen();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->Snapshot().claims.size(), 2u + kThreads);
}

TEST_F(CheckpointConcurrencyTest, SyncAfterFailedWritePersists) {
  DiskFullEnv env;
  auto cp = MustOpen(&env);
  env.full = true;
  EXPECT_EQ(cp->Update([](State& s) {
                s.claims["uid-x"] = MakeClaim("x", ClaimState::kPrepareCompleted, 1);
              }).code(),
            Code::kResourceExhausted);
  env.full = false;
  // E.g. kubelet retries the prepare: the claim looks completed in memory, so the caller Syncs
  // before answering from it.
  ASSERT_TRUE(cp->Find("uid-x").has_value());
  ASSERT_TRUE(cp->Sync().ok());
  EXPECT_FALSE(cp->dirty());
  EXPECT_TRUE(FileHasClaim(cp->file_path(), "uid-x"));
}

// The first write blocks until released and then fails; later writes succeed.
class GatedEnv : public Env {
 public:
  Status WriteFileAtomic(const fs::path& path, std::string_view data, mode_t mode,
                         Durability durability) override {
    int n = 0;
    {
      std::unique_lock lock(mu);
      n = ++calls;
      if (n == 1) {
        entered = true;
        cv.notify_all();
        cv.wait(lock, [&] { return released; });
      }
    }
    if (n == 1) return ErrnoStatus("write " + path.string(), ENOSPC);
    return Env::WriteFileAtomic(path, data, mode, durability);
  }
  void WaitEntered() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return entered; });
  }
  void Release() {
    std::lock_guard lock(mu);
    released = true;
    cv.notify_all();
  }
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false;
  bool released = false;
  int calls = 0;
};

TEST_F(CheckpointConcurrencyTest, FailedWriteOnlyFailsTheMutationsItCarried) {
  GatedEnv env;
  auto cp = MustOpen(&env);
  ASSERT_NE(cp, nullptr);
  Status a_status;
  Status b_status;
  std::thread a([&] {
    a_status = cp->Update(
        [](State& s) { s.claims["uid-a"] = MakeClaim("a", ClaimState::kPrepareStarted, 0); });
  });
  env.WaitEntered();  // A leads a write carrying only its own mutation, and is stuck in it
  std::thread b([&] {
    b_status = cp->Update(
        [](State& s) { s.claims["uid-b"] = MakeClaim("b", ClaimState::kPrepareStarted, 0); });
  });
  while (!cp->Find("uid-b").has_value()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  env.Release();  // A's write fails; B's mutation was not in it, so B writes (and succeeds)
  a.join();
  b.join();
  EXPECT_EQ(a_status.code(), Code::kResourceExhausted);
  EXPECT_TRUE(b_status.ok()) << b_status.ToString();
  EXPECT_EQ(env.calls, 2);
  // A's mutation was kept in memory and went out with B's write.
  EXPECT_FALSE(cp->dirty());
  EXPECT_TRUE(FileHasClaim(cp->file_path(), "uid-a"));
  EXPECT_TRUE(FileHasClaim(cp->file_path(), "uid-b"));
}

}  // namespace
}  // namespace accel_dra::checkpoint::testing
