// Crash recovery for real: the test binary re-executes itself to run
// PreparerCrashHelper.DISABLED_PrepareThenUnprepare with ACCEL_DRA_CRASH_AT=<point> (a fresh
// process, so CrashPoint reads the variable at its first use). The child is killed by SIGKILL in
// the middle of the operation; the parent then opens the checkpoint and the CDI writer on the same
// directories like a restarted plugin, runs Recover() and checks that nothing leaked.
// posix_spawn happens while the parent is single-threaded, which ThreadSanitizer supports.

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "claims_test_util.h"

extern char** environ;

namespace accel_dra::claims::testing {
namespace {

constexpr const char* kRootVar = "ACCEL_DRA_TEST_DRIVER_ROOT";
constexpr const char* kCrashName = "crash";
const std::string kCrashUid = Uid(77);

Json CrashClaim() {
  return ClaimJson(
      kCrashName, kCrashUid,
      {Result{.request = "a", .device = "gpu-0"}, Result{.request = "b/x", .device = "gpu-1"}},
      Json::array(
          {OpaqueConfig("FromClaim", {"a"}, DeviceConfigParams({{"strategy", "TimeSlicing"}}))}));
}

// The child: prepares the crash claim and unprepares it again, on the directories under
// $ACCEL_DRA_TEST_DRIVER_ROOT, with the real Env. Returns normally only when no crash point fired.
TEST(PreparerCrashHelper, DISABLED_PrepareThenUnprepare) {
  const char* root = std::getenv(kRootVar);
  ASSERT_TRUE(root != nullptr) << "started by PreparerCrashTest only";
  NodeDirs dirs(root);
  auto cp = checkpoint::Checkpoint::Open(Env::Default(), dirs.data(), HostRoot(dirs.host()));
  ASSERT_TRUE(cp.ok()) << cp.status().ToString();
  cdi::CdiWriter writer(Env::Default(), dirs.cdi(), kDriver);
  FakeClaims claims;
  claims.Put(CrashClaim());
  auto inv = SimInventory();
  PreparerOptions opts;
  opts.driver_name = kDriver;
  opts.pool_name = kNode;
  Preparer p(
      opts, claims.Getter(), [inv] { return inv; }, cp->get(), &writer);
  auto ref = Ref(kCrashName, kCrashUid);
  auto out = p.Prepare({ref});
  ASSERT_TRUE(out[ref.uid].ok()) << out[ref.uid].error;
  auto un = p.Unprepare({ref});
  ASSERT_EQ(un[ref.uid], "");
}

struct CrashCase {
  const char* point;
  bool claim_survives;  // the crash claim is PrepareCompleted after recovery
  int rolled_back;      // Recover() report
  int specs_recreated;
  int removed_temp_files;  // checkpoint leftovers found by Open()
};

void PrintTo(const CrashCase& c, std::ostream* os) { *os << c.point; }

class PreparerCrashTest : public PreparerTestBase, public ::testing::WithParamInterface<CrashCase> {
 protected:
  // Runs the helper with ACCEL_DRA_CRASH_AT=`crash_at`; returns its wait status.
  int RunHelper(const std::string& crash_at) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string v = *e;
      if (v.rfind("ACCEL_DRA_CRASH_AT=", 0) == 0 || v.rfind("GTEST_OUTPUT=", 0) == 0 ||
          v.rfind(std::string(kRootVar) + "=", 0) == 0) {
        continue;
      }
      env_strings.push_back(std::move(v));
    }
    env_strings.push_back("ACCEL_DRA_CRASH_AT=" + crash_at);
    env_strings.push_back(std::string(kRootVar) + "=" + dirs_->root().string());
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);

    std::string self = fs::read_symlink("/proc/self/exe").string();
    std::string filter = "--gtest_filter=PreparerCrashHelper.DISABLED_PrepareThenUnprepare";
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
};

TEST_P(PreparerCrashTest, RecoversToAConsistentState) {
  const CrashCase& c = GetParam();
  // Another claim, prepared before the crash, must survive it untouched.
  auto keep = PutAndPrepare("keep", Uid(1), "gpu-5");
  const std::string keep_spec = ReadAll(dirs_->SpecPath(keep.uid));
  Close();  // the child must get the checkpoint lock

  int status = RunHelper(c.point);
  ASSERT_TRUE(WIFSIGNALED(status))
      << "helper was not killed at " << c.point << "; wait status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGKILL);

  Open();  // like the restarted plugin
  EXPECT_FALSE(checkpoint_->load_report().warning.has_value());
  EXPECT_EQ(checkpoint_->load_report().removed_temp_files, c.removed_temp_files);
  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rolled_back, c.rolled_back);
  EXPECT_EQ(report->orphan_specs_removed, 0);
  EXPECT_EQ(report->specs_recreated, c.specs_recreated);
  EXPECT_EQ(report->completed, c.claim_survives ? 2 : 1);
  ExpectConsistent();  // spec exists iff PrepareCompleted; nothing PrepareStarted
  EXPECT_EQ(Entry(kCrashUid).has_value(), c.claim_survives);
  EXPECT_EQ(SpecExists(kCrashUid), c.claim_survives);
  ASSERT_TRUE(Entry(keep.uid).has_value());
  EXPECT_EQ(ReadAll(dirs_->SpecPath(keep.uid)), keep_spec);
  // No half-written files in the CDI root: only the spec files.
  for (const auto& name : CdiRootEntries())
    EXPECT_EQ(name.rfind('.', 0), std::string::npos) << name;

  // Kubelet retries: prepare works (again, or idempotently), and unprepare leaves nothing.
  claims_.Put(CrashClaim());
  auto crash = Ref(kCrashName, kCrashUid);
  auto r = PrepareOne(crash);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.devices.size(), 2u);
  EXPECT_TRUE(SpecExists(kCrashUid));
  ExpectConsistent();
  EXPECT_EQ(UnprepareOne(crash), "");
  EXPECT_EQ(UnprepareOne(keep), "");
  EXPECT_TRUE(checkpoint_->Snapshot().claims.empty());
  EXPECT_TRUE(CdiRootEntries().empty());
  Reopen();
  EXPECT_TRUE(checkpoint_->Snapshot().claims.empty());
  EXPECT_TRUE(fs::exists(dirs_->data() / "checkpoint.json"));
  for (const auto& e : fs::directory_iterator(dirs_->data())) {
    std::string name = e.path().filename().string();
    EXPECT_TRUE(name == "checkpoint.json" || name == "checkpoint.lock") << name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Points, PreparerCrashTest,
    ::testing::Values(
        // PrepareStarted recorded, no spec yet: rolled back.
        CrashCase{"prepare-after-checkpoint-started", false, 1, 0, 0},
        // PrepareStarted recorded, spec written: rolled back (spec removed).
        CrashCase{"prepare-after-cdi-write", false, 1, 0, 0},
        // Fully prepared but not yet answered: kept; kubelet's retry is answered idempotently.
        CrashCase{"prepare-after-checkpoint-completed", true, 0, 0, 0},
        // Unprepare removed the spec, the entry is still there: the spec is re-created, so the
        // claim stays fully prepared until kubelet's retried unprepare removes both.
        CrashCase{"unprepare-after-cdi-remove", true, 0, 1, 0},
        // Inside the first atomic write (the PrepareStarted record): the old state, plus the
        // checkpoint's temp file, which Open() removes.
        CrashCase{"atomic-write-before-rename", false, 0, 0, 1}),
    [](const ::testing::TestParamInfo<CrashCase>& param_info) {
      std::string name = param_info.param.point;
      for (char& ch : name) {
        if (ch == '-') ch = '_';
      }
      return name;
    });

}  // namespace
}  // namespace accel_dra::claims::testing
