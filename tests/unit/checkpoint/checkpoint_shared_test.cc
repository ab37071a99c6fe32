// Shared mode: several Checkpoint objects (in one process or in several) using one data dir, each
// operation a transaction under checkpoint.lock.

#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "accel_dra/checkpoint/checkpoint.h"
#include "checkpoint_test_util.h"

extern char** environ;

namespace accel_dra::checkpoint::testing {
namespace {

using std::chrono::milliseconds;

OpenOptions Shared(milliseconds timeout = milliseconds(10000)) {
  OpenOptions o;
  o.shared = true;
  o.lock_timeout = timeout;
  return o;
}

std::string LockMessage(pid_t holder, const fs::path& data_dir) {
  return "another accel-dra plugin process (pid " + std::to_string(holder) + "?) holds " +
         (data_dir / "checkpoint.lock").string() + "; is a second plugin running on this node?";
}

// Claims in the file on disk (-1 when it cannot be parsed).
int ClaimsOnDisk(const fs::path& file) {
  Json doc = Json::parse(ReadAll(file), nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc["data"].is_object()) return -1;
  return static_cast<int>(doc["data"]["claims"].size());
}

class DiskFullEnv : public Env {
 public:
  Status WriteFileAtomic(const fs::path& path, std::string_view data, mode_t mode,
                         Durability durability) override {
    if (full.load()) return ErrnoStatus("write " + path.string(), ENOSPC);
    return Env::WriteFileAtomic(path, data, mode, durability);
  }
  std::atomic<bool> full{false};
};

class SlowCountingEnv : public Env {
 public:
  Status WriteFileAtomic(const fs::path& path, std::string_view data, mode_t mode,
                         Durability durability) override {
    writes.fetch_add(1);
    std::this_thread::sleep_for(milliseconds(20));
    return Env::WriteFileAtomic(path, data, mode, durability);
  }
  std::atomic<int> writes{0};
};

class CheckpointSharedTest : public CheckpointTestBase {};

TEST_F(CheckpointSharedTest, TwoObjectsSeeEachOthersUpdates) {
  auto a = MustOpen(Env::Default(), Shared());
  auto b = MustOpen(Env::Default(), Shared());  // the first does not keep the lock
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);

  ASSERT_TRUE(a->Update([](State& s) {
                 s.claims["uid-a"] = MakeClaim("a", ClaimState::kPrepareCompleted, 1);
               }).ok());
  auto found = b->Find("uid-a");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, MakeClaim("a", ClaimState::kPrepareCompleted, 1));

  // B's mutation runs on fresh state: a conflict check sees A's claim.
  ASSERT_TRUE(a->Update([](State& s) {
                 s.claims["uid-a2"] = MakeClaim("a2", ClaimState::kPrepareStarted, 1);
               }).ok());
  bool saw_a2 = false;
  ASSERT_TRUE(b->Update([&](State& s) {
                 saw_a2 = s.claims.contains("uid-a2");
                 s.claims["uid-b"] = MakeClaim("b", ClaimState::kPrepareCompleted, 2);
               }).ok());
  EXPECT_TRUE(saw_a2);

  State sa = a->Snapshot();
  EXPECT_EQ(sa.claims.size(), 3u);
  EXPECT_TRUE(sa.claims.contains("uid-b"));
  EXPECT_EQ(sa, b->Snapshot());
  EXPECT_EQ(ClaimsOnDisk(file()), 3);

  // Removal is seen too.
  ASSERT_TRUE(a->Update([](State& s) { s.claims.erase("uid-b"); }).ok());
  EXPECT_FALSE(b->Find("uid-b").has_value());
  EXPECT_GE(b->stats().reloads, 2u);
  EXPECT_EQ(b->stats().stale_reads, 0u);
  EXPECT_FALSE(a->dirty());
  EXPECT_FALSE(b->dirty());
  EXPECT_TRUE(a->Sync().ok());
  EXPECT_EQ(a->stats().writes, 3u);  // Sync() had nothing to write

  // A file deleted behind our back is an empty state.
  fs::remove(file());
  EXPECT_TRUE(a->Snapshot().claims.empty());
}

TEST_F(CheckpointSharedTest, GroupCommitSurvivesAndEveryMutationSeesTheOthers) {
  constexpr int kThreads = 32;
  SlowCountingEnv env;
  auto a = MustOpen(&env, Shared());
  auto b = MustOpen(Env::Default(), Shared());
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::latch start(kThreads * 2);
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads * 2; ++i) {
    threads.emplace_back([&, i] {
      Checkpoint* cp = i % 2 == 0 ? a.get() : b.get();
      const std::string uid = "uid-" + std::to_string(i);
      start.arrive_and_wait();
      Status st = cp->Update([&](State& s) {
        s.claims[uid] = MakeClaim("c" + std::to_string(i), ClaimState::kPrepareCompleted, 1);
      });
      if (!st.ok()) failed.fetch_add(1);
      if (!cp->Find(uid).has_value()) failed.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(ClaimsOnDisk(file()), kThreads * 2);
  EXPECT_EQ(a->Snapshot().claims.size(), static_cast<size_t>(kThreads * 2));
  EXPECT_LT(env.writes.load(), kThreads);  // A's updaters shared writes
  EXPECT_EQ(a->stats().updates, static_cast<uint64_t>(kThreads));
}

TEST_F(CheckpointSharedTest, FailedWriteRollsBackTheBatch) {
  DiskFullEnv env;
  auto cp = MustOpen(&env, Shared());
  ASSERT_NE(cp, nullptr);
  ASSERT_TRUE(cp->Update([](State& s) {
                  s.claims["uid-1"] = MakeClaim("one", ClaimState::kPrepareCompleted, 1);
                }).ok());
  env.full = true;
  Status st = cp->Update(
      [](State& s) { s.claims["uid-2"] = MakeClaim("two", ClaimState::kPrepareCompleted, 1); });
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.ToString();
  EXPECT_FALSE(cp->dirty());
  EXPECT_FALSE(cp->Find("uid-2").has_value());  // memory is not ahead of disk
  EXPECT_TRUE(cp->Find("uid-1").has_value());
  EXPECT_TRUE(cp->Sync().ok());  // nothing to write
  EXPECT_EQ(cp->stats().failed_writes, 1u);
  env.full = false;
  EXPECT_TRUE(cp->Update([](State& s) {
                  s.claims["uid-3"] = MakeClaim("three", ClaimState::kPrepareCompleted, 1);
                }).ok());
  EXPECT_EQ(ClaimsOnDisk(file()), 2);
}

TEST_F(CheckpointSharedTest, ExceptionInMutateIsRethrownToItsCaller) {
  auto cp = MustOpen(Env::Default(), Shared());
  ASSERT_NE(cp, nullptr);
  EXPECT_THROW((void)cp->Update([](State& s) {
    s.claims["uid-x"] = MakeClaim("x", ClaimState::kPrepareStarted, 0);
    throw std::runtime_error("boom");
  }),
               std::runtime_error);
  // Its change was written with the batch (as in exclusive mode, it is not rolled back).
  EXPECT_TRUE(cp->Find("uid-x").has_value());
  EXPECT_EQ(ClaimsOnDisk(file()), 1);
}

TEST_F(CheckpointSharedTest, SharedOpenMovesABadFileAsideOnce) {
  fs::create_directories(data_);
  WriteAll(file(), "{not json");
  auto a = MustOpen(Env::Default(), Shared());
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->load_report().warning.has_value());
  EXPECT_NE(a->load_report().warning->message().find("their CDI specs are removed at start"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(file()));
  auto b = MustOpen(Env::Default(), Shared());
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(b->load_report().warning.has_value());

  // A bad file showing up later is an operation error, not moved aside.
  WriteAll(file(), "{not json");
  Status st = a->Update([](State&) {});
  EXPECT_EQ(st.code(), Code::kDataLoss) << st.ToString();
  EXPECT_TRUE(fs::exists(file()));
  EXPECT_EQ(a->Sync().code(), Code::kDataLoss);
  a->Snapshot();
  EXPECT_EQ(a->stats().stale_reads, 1u);
}

TEST_F(CheckpointSharedTest, RebootedSharedCheckpointRecordsTheNewBootIdOnSync) {
  {
    auto cp = MustOpen(Env::Default(), Shared());
    ASSERT_TRUE(cp->Update([](State& s) {
                    s.claims["uid-1"] = MakeClaim("one", ClaimState::kPrepareCompleted, 1);
                  }).ok());
  }
  SetBootId(kBootB);
  auto cp = MustOpen(Env::Default(), Shared());
  ASSERT_NE(cp, nullptr);
  EXPECT_TRUE(cp->load_report().rebooted);
  EXPECT_TRUE(cp->dirty());
  EXPECT_EQ(cp->Snapshot().claims.size(), 1u);
  ASSERT_TRUE(cp->Sync().ok());
  EXPECT_FALSE(cp->dirty());
  EXPECT_EQ(Json::parse(ReadAll(file()))["data"]["bootId"], kBootB);
}

TEST_F(CheckpointSharedTest, ExclusiveAndSharedUsersExcludeEachOther) {
  // An exclusive owner keeps shared users out.
  {
    auto owner = MustOpen();
    ASSERT_NE(owner, nullptr);
    auto r = TryOpen(Env::Default(), Shared(milliseconds(200)));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
    EXPECT_EQ(r.status().message(), LockMessage(::getpid(), data_));
  }

  // An exclusive Open gets in between shared operations and then owns the checkpoint.
  auto shared = MustOpen(Env::Default(), Shared(milliseconds(200)));
  ASSERT_NE(shared, nullptr);
  ASSERT_TRUE(shared
                  ->Update([](State& s) {
                    s.claims["uid-s"] = MakeClaim("s", ClaimState::kPrepareCompleted, 1);
                  })
                  .ok());
  {
    auto owner = MustOpen(Env::Default(), LockTimeout(milliseconds(1000)));
    ASSERT_NE(owner, nullptr);
    EXPECT_TRUE(owner->Find("uid-s").has_value());
    auto t0 = std::chrono::steady_clock::now();
    Status st = shared->Update([](State& s) { s.claims.erase("uid-s"); });
    EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(190));
    EXPECT_EQ(st.code(), Code::kFailedPrecondition);
    EXPECT_EQ(st.message(), LockMessage(::getpid(), data_));
    EXPECT_EQ(shared->Sync().code(), Code::kFailedPrecondition);
    EXPECT_TRUE(shared->Find("uid-s").has_value());  // the last state read
    EXPECT_EQ(shared->stats().stale_reads, 1u);
    ASSERT_TRUE(owner
                    ->Update([](State& s) {
                      s.claims["uid-x"] = MakeClaim("x", ClaimState::kPrepareCompleted, 1);
                    })
                    .ok());
  }
  // The owner is gone: shared users continue and see what it wrote.
  bool saw_x = false;
  ASSERT_TRUE(shared->Update([&](State& s) { saw_x = s.claims.contains("uid-x"); }).ok());
  EXPECT_TRUE(saw_x);
  EXPECT_EQ(shared->Snapshot().claims.size(), 2u);
}

// ---------------------------------------------------------------------------------------------
// Two processes. The test binary re-executes itself to run SharedHelper.DISABLED_AddClaims.

constexpr const char* kDirVar = "ACCEL_DRA_TEST_CKPT_DIR";
constexpr const char* kHostVar = "ACCEL_DRA_TEST_CKPT_HOST";
constexpr const char* kPrefixVar = "ACCEL_DRA_TEST_CKPT_PREFIX";
// Fairness (issue 11): one user re-locking the instant it unlocks (a busy process) must not
// starve another past its lock timeout. Two objects in one process stand for two processes: each
// has its own lock descriptor. Without the turnstile the waiter's polls almost never hit the
// instant between an unlock and the next lock.
TEST_F(CheckpointSharedTest, ABusyWriterDoesNotStarveAnother) {
  // Without the turnstile, 1 of 3 runs of 10 such updates had updates time out (measured).
  constexpr int kOtherUpdates = 30;
  auto busy = MustOpen(Env::Default(), Shared());
  auto other = MustOpen(Env::Default(), Shared(milliseconds(1000)));
  ASSERT_NE(busy, nullptr);
  ASSERT_NE(other, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<int> busy_writes{0};
  std::thread hog([&] {
    while (!stop.load()) {
      Status st = busy->Update([&](State& s) {
        s.claims["busy"] = MakeClaim("busy", ClaimState::kPrepareCompleted, busy_writes % 3);
      });
      if (!st.ok()) ADD_FAILURE() << st.ToString();
      busy_writes++;
    }
  });
  while (busy_writes.load() < 5) std::this_thread::sleep_for(milliseconds(1));
  for (int i = 0; i < kOtherUpdates; ++i) {
    const std::string uid = "other-" + std::to_string(i);
    Status st = other->Update(
        [&](State& s) { s.claims[uid] = MakeClaim(uid, ClaimState::kPrepareCompleted, 1); });
    EXPECT_TRUE(st.ok()) << "update " << i << ": " << st.ToString();
  }
  stop = true;
  hog.join();
  EXPECT_EQ(ClaimsOnDisk(file()), kOtherUpdates + 1);
}

constexpr int kPerProcess = 200;

TEST(SharedHelper, DISABLED_AddClaims) {
  const char* dir = std::getenv(kDirVar);
  const char* host = std::getenv(kHostVar);
  const char* prefix = std::getenv(kPrefixVar);
  ASSERT_TRUE(dir != nullptr && host != nullptr && prefix != nullptr)
      << "started by the shared-mode process test only";
  OpenOptions o;
  o.shared = true;
  auto cp = Checkpoint::Open(Env::Default(), dir, HostRoot(host), o);
  ASSERT_TRUE(cp.ok()) << cp.status().ToString();
  for (int i = 0; i < kPerProcess; ++i) {
    const std::string uid = std::string(prefix) + "-" + std::to_string(i);
    Status st = (*cp)->Update(
        [&](State& s) { s.claims[uid] = MakeClaim(uid, ClaimState::kPrepareCompleted, 1); });
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
}

pid_t SpawnHelper(const fs::path& data, const fs::path& host, const std::string& prefix) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string v = *e;
    if (v.rfind("ACCEL_DRA_CRASH_AT=", 0) == 0 || v.rfind("GTEST_OUTPUT=", 0) == 0) continue;
    env_strings.push_back(std::move(v));
  }
  env_strings.push_back(std::string(kDirVar) + "=" + data.string());
  env_strings.push_back(std::string(kHostVar) + "=" + host.string());
  env_strings.push_back(std::string(kPrefixVar) + "=" + prefix);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string self = fs::read_symlink("/proc/self/exe").string();
  std::string filter = "--gtest_filter=SharedHelper.DISABLED_AddClaims";
  std::string disabled = "--gtest_also_run_disabled_tests";
  std::vector<char*> argv = {self.data(), filter.data(), disabled.data(), nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), envp.data());
  EXPECT_EQ(rc, 0);
  return rc == 0 ? pid : -1;
}

int WaitStatus(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

TEST_F(CheckpointSharedTest, TwoProcessesUpdatingConcurrentlyLoseNothing) {
  {
    auto seed = MustOpen(Env::Default(), Shared());  // creates the data dir
    ASSERT_NE(seed, nullptr);
  }
  pid_t p1 = SpawnHelper(data_, host_, "p1");
  pid_t p2 = SpawnHelper(data_, host_, "p2");
  ASSERT_GT(p1, 0);
  ASSERT_GT(p2, 0);
  int s1 = WaitStatus(p1);
  int s2 = WaitStatus(p2);
  ASSERT_TRUE(WIFEXITED(s1) && WEXITSTATUS(s1) == 0) << "wait status " << s1;
  ASSERT_TRUE(WIFEXITED(s2) && WEXITSTATUS(s2) == 0) << "wait status " << s2;

  EXPECT_EQ(ClaimsOnDisk(file()), 2 * kPerProcess);
  auto cp = MustOpen(Env::Default(), LockTimeout(milliseconds(0)));  // nobody holds it now
  ASSERT_NE(cp, nullptr);
  State s = cp->Snapshot();
  ASSERT_EQ(s.claims.size(), static_cast<size_t>(2 * kPerProcess));
  for (int i = 0; i < kPerProcess; ++i) {
    EXPECT_TRUE(s.claims.contains("p1-" + std::to_string(i)));
    EXPECT_TRUE(s.claims.contains("p2-" + std::to_string(i)));
  }
}

}  // namespace
}  // namespace accel_dra::checkpoint::testing
