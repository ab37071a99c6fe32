// Cross-process behaviour: the exclusive lock (fork) and crash recovery (a child process killed
// at a crash point). These run under ThreadSanitizer too: fork() happens while the test process
// is single-threaded and the children start no threads, which TSan supports (checked with GCC 12).

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "accel_dra/checkpoint/checkpoint.h"
#include "checkpoint_test_util.h"

extern char** environ;

namespace accel_dra::checkpoint::testing {
namespace {

using std::chrono::milliseconds;

std::string LockMessage(pid_t holder, const fs::path& data_dir) {
  return "another accel-dra plugin process (pid " + std::to_string(holder) + "?) holds " +
         (data_dir / "checkpoint.lock").string() + "; is a second plugin running on this node?";
}

class CheckpointLockTest : public CheckpointTestBase {};

TEST_F(CheckpointLockTest, SecondOpenerInTheSameProcessIsRefused) {
  auto first = MustOpen();
  ASSERT_NE(first, nullptr);
  auto t0 = std::chrono::steady_clock::now();
  auto second = TryOpen(Env::Default(), LockTimeout(milliseconds(250)));
  auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(second.status().message(), LockMessage(::getpid(), data_));
  EXPECT_GE(waited, milliseconds(240));  // it waited for the holder before giving up
  first.reset();
  EXPECT_NE(MustOpen(Env::Default(), LockTimeout(milliseconds(0))), nullptr);
}

// Reads everything from `fd` until EOF.
std::string Drain(int fd) {
  std::string out;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

int WaitExitCode(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST_F(CheckpointLockTest, ForkedSecondPluginIsRefusedUntilTheFirstCloses) {
  auto cp = MustOpen();
  ASSERT_NE(cp, nullptr);

  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    auto r = TryOpen(Env::Default(), LockTimeout(milliseconds(200)));
    std::string msg = r.ok() ? "OPENED" : r.status().message();
    [[maybe_unused]] ssize_t n = ::write(fds[1], msg.data(), msg.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string msg = Drain(fds[0]);
  ::close(fds[0]);
  EXPECT_EQ(WaitExitCode(child), 0);
  EXPECT_EQ(msg, LockMessage(::getpid(), data_));

  cp.reset();  // released on destruction
  child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto r = TryOpen(Env::Default(), LockTimeout(milliseconds(0)));
    ::_exit(r.ok() ? 0 : 1);
  }
  EXPECT_EQ(WaitExitCode(child), 0);
}

TEST_F(CheckpointLockTest, OpenWaitsForTheHolderToLetGo) {
  fs::create_directories(data_);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    auto r = TryOpen(Env::Default(), LockTimeout(milliseconds(0)));
    if (!r.ok()) ::_exit(1);
    [[maybe_unused]] ssize_t n = ::write(ready[1], "x", 1);
    std::this_thread::sleep_for(milliseconds(300));
    r.value().reset();  // release by destruction, then stay alive
    std::this_thread::sleep_for(milliseconds(5000));
    ::_exit(0);
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  // The child holds the lock now and recorded its pid in the lock file.
  EXPECT_EQ(ReadAll(data_ / "checkpoint.lock"), std::to_string(child) + "\n");
  auto t0 = std::chrono::steady_clock::now();
  auto r = TryOpen(Env::Default(), LockTimeout(milliseconds(4000)));
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GE(waited, milliseconds(100));
  EXPECT_LT(waited, milliseconds(3000));  // released by the destructor, not by the child's exit
  ::kill(child, SIGKILL);
  WaitExitCode(child);
}

// ---------------------------------------------------------------------------------------------
// Crash recovery. The test binary re-executes itself to run CrashHelper.DISABLED_UpdateOnce with
// ACCEL_DRA_CRASH_AT set (a fresh process, so CrashPoint reads the variable at its first use).

constexpr const char* kCrashDirVar = "ACCEL_DRA_TEST_CKPT_DIR";
constexpr const char* kCrashHostVar = "ACCEL_DRA_TEST_CKPT_HOST";
constexpr const char* kCrashClaim = "uid-crash";

TEST(CrashHelper, DISABLED_UpdateOnce) {
  const char* dir = std::getenv(kCrashDirVar);
  const char* host = std::getenv(kCrashHostVar);
  ASSERT_TRUE(dir != nullptr && host != nullptr) << "started by the crash tests only";
  auto cp = Checkpoint::Open(Env::Default(), dir, HostRoot(host));
  ASSERT_TRUE(cp.ok()) << cp.status().ToString();
  Status st = (*cp)->Update([](State& s) {
    s.claims[kCrashClaim] = MakeClaim("crash", ClaimState::kPrepareCompleted, 1);
  });
  ASSERT_TRUE(st.ok()) << st.ToString();  // only reached when no crash point fired
}

class CheckpointCrashTest : public CheckpointTestBase {
 protected:
  // Runs the helper with ACCEL_DRA_CRASH_AT=`crash_at`; returns its wait status.
  int RunHelper(const std::string& crash_at) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string v = *e;
      if (v.rfind("ACCEL_DRA_CRASH_AT=", 0) == 0 || v.rfind("GTEST_OUTPUT=", 0) == 0) continue;
      env_strings.push_back(std::move(v));
    }
    env_strings.push_back("ACCEL_DRA_CRASH_AT=" + crash_at);
    env_strings.push_back(std::string(kCrashDirVar) + "=" + data_.string());
    env_strings.push_back(std::string(kCrashHostVar) + "=" + host_.string());
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);

    std::string self = fs::read_symlink("/proc/self/exe").string();
    std::string filter = "--gtest_filter=CrashHelper.DISABLED_UpdateOnce";
    std::string disabled = "--gtest_also_run_disabled_tests";
    std::vector<char*> argv = {self.data(), filter.data(), disabled.data(), nullptr};
    pid_t pid = 0;
    int rc = ::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), envp.data());
    EXPECT_EQ(rc, 0);
    if (rc != 0) return -1;
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
  }

  void Seed() {
    auto cp = MustOpen();
    ASSERT_TRUE(cp->Update([](State& s) {
                    s.claims["uid-seed"] = MakeClaim("seed", ClaimState::kPrepareCompleted, 2);
                  }).ok());
  }
};

void ExpectKilled(int status) {
  ASSERT_TRUE(WIFSIGNALED(status)) << "helper was not killed; wait status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST_F(CheckpointCrashTest, CrashAfterWriteKeepsTheMutation) {
  Seed();
  ExpectKilled(RunHelper("checkpoint-after-write"));
  auto cp = MustOpen(Env::Default(), LockTimeout(milliseconds(0)));  // lock died with it
  ASSERT_NE(cp, nullptr);
  EXPECT_FALSE(cp->load_report().warning.has_value());
  State s = cp->Snapshot();
  EXPECT_EQ(s.claims.size(), 2u);
  EXPECT_TRUE(s.claims.contains(kCrashClaim));
  EXPECT_TRUE(s.claims.contains("uid-seed"));
}

TEST_F(CheckpointCrashTest, CrashBeforeWriteKeepsTheOldState) {
  Seed();
  const std::string before = ReadAll(file());
  ExpectKilled(RunHelper("checkpoint-before-write"));
  EXPECT_EQ(ReadAll(file()), before);
  auto cp = MustOpen(Env::Default(), LockTimeout(milliseconds(0)));
  ASSERT_NE(cp, nullptr);
  EXPECT_FALSE(cp->load_report().warning.has_value());
  State s = cp->Snapshot();
  EXPECT_EQ(s.claims.size(), 1u);
  EXPECT_TRUE(s.claims.contains("uid-seed"));
}

TEST_F(CheckpointCrashTest, CrashInsideTheAtomicWriteKeepsTheOldStateAndCleansUp) {
  Seed();
  const std::string before = ReadAll(file());
  ExpectKilled(RunHelper("atomic-write-before-rename"));
  EXPECT_EQ(ReadAll(file()), before);
  int temps = 0;
  for (const auto& e : fs::directory_iterator(data_)) {
    if (e.path().filename().string().rfind(".checkpoint.json.tmp-", 0) == 0) ++temps;
  }
  EXPECT_EQ(temps, 1);  // the half-done write's temp file
  auto cp = MustOpen(Env::Default(), LockTimeout(milliseconds(0)));
  ASSERT_NE(cp, nullptr);
  EXPECT_EQ(cp->load_report().removed_temp_files, 1);
  EXPECT_EQ(cp->Snapshot().claims.size(), 1u);
  for (const auto& e : fs::directory_iterator(data_)) {
    EXPECT_NE(e.path().filename().string().rfind(".checkpoint.json.tmp-", 0), 0u) << e.path();
  }
}

}  // namespace
}  // namespace accel_dra::checkpoint::testing
