// A late prepare must not undo an unprepare (issue 11, point 5): operations on one claim run in
// arrival order, an unprepare wins over a prepare that arrived before it completed, and a prepare
// honours its caller's deadline and cancellation before every side effect. Run under
// ThreadSanitizer too.

#include <atomic>
#include <barrier>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "accel_dra/claims/claim_turns.h"
#include "claims_test_util.h"

namespace accel_dra::claims::testing {
namespace {

using Clock = model::CallContext::Clock;
using std::chrono::milliseconds;

// Blocks claim reads of one name until opened: a slow apiserver.
class Gate {
 public:
  void Block(const std::string& name) {
    std::unique_lock<std::mutex> lock(mu_);
    if (name != name_) return;
    entered_++;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  void Close(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    name_ = name;
    open_ = false;
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits until `n` reads have entered the gate.
  bool WaitEntered(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20), [&] { return entered_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string name_;
  bool open_ = true;
  int entered_ = 0;
};

// A clock the test moves.
class FakeClock {
 public:
  Clock::time_point Now() const { return Clock::time_point(milliseconds(now_ms_.load())); }
  void Advance(milliseconds d) { now_ms_ += d.count(); }
  std::function<Clock::time_point()> Fn() {
    return [this] { return Now(); };
  }

 private:
  std::atomic<int64_t> now_ms_{1000000};
};

template <typename Pred>
bool Eventually(Pred pred) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return pred();
}

// ---- ClaimTurns ---------------------------------------------------------------------------------

TEST(ClaimTurnsTest, OneClaimRunsInArrivalOrder) {
  constexpr int kOps = 16;
  ClaimTurns turns;
  std::vector<ClaimTurns::Turn> line;
  for (int i = 0; i < kOps; ++i) line.push_back(turns.Arrive("claim"));
  std::mutex mu;
  std::vector<int> ran;
  std::vector<std::thread> threads;
  // Started in reverse order: the order they run in is the order they arrived in.
  for (int i = kOps - 1; i >= 0; --i) {
    threads.emplace_back([&, i] {
      ASSERT_TRUE(line[i].Wait(model::CallContext()).ok());
      {
        std::lock_guard<std::mutex> lock(mu);
        ran.push_back(i);
      }
      line[i].Leave();
    });
  }
  for (auto& t : threads) t.join();
  std::vector<int> want(kOps);
  for (int i = 0; i < kOps; ++i) want[i] = i;
  EXPECT_EQ(ran, want);
  EXPECT_EQ(turns.lines(), 0u);
}

TEST(ClaimTurnsTest, FifoUnderContention) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 40;
  ClaimTurns turns;
  std::mutex mu;
  std::vector<int> arrived, ran;
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  {
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int r = 0; r < kRounds; ++r) {
          const int id = t * kRounds + r;
          std::optional<ClaimTurns::Turn> turn;
          {
            std::lock_guard<std::mutex> lock(mu);  // makes the arrival order observable
            turn.emplace(turns.Arrive("claim"));
            arrived.push_back(id);
          }
          ASSERT_TRUE(turn->Wait(model::CallContext()).ok());
          if (inside.fetch_add(1) != 0) overlaps++;
          {
            std::lock_guard<std::mutex> lock(mu);
            ran.push_back(id);
          }
          inside.fetch_sub(1);
          turn->Leave();
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(ran, arrived);
  EXPECT_EQ(turns.lines(), 0u);
}

TEST(ClaimTurnsTest, ClaimsDoNotWaitForEachOther) {
  ClaimTurns turns;
  auto a = turns.Arrive("a");
  auto b = turns.Arrive("b");
  ASSERT_TRUE(a.Wait(model::CallContext()).ok());
  ASSERT_TRUE(b.Wait(model::CallContext()).ok());  // a still runs
  EXPECT_EQ(turns.waiting("a"), 1u);
  EXPECT_EQ(turns.waiting("b"), 1u);
}

TEST(ClaimTurnsTest, AWaiterWhoseDeadlinePassesLeavesTheLine) {
  ClaimTurns turns;
  FakeClock clock;
  auto first = turns.Arrive("c");
  auto late = turns.Arrive("c");
  auto third = turns.Arrive("c");
  ASSERT_TRUE(first.Wait(model::CallContext()).ok());
  Status waited;
  // Made before the thread starts: the deadline must not follow the clock's advance below.
  const model::CallContext context(clock.Now() + milliseconds(100), nullptr, clock.Fn());
  std::thread t([&] { waited = late.Wait(context); });
  EXPECT_EQ(turns.waiting("c"), 3u);
  clock.Advance(milliseconds(150));
  t.join();
  EXPECT_EQ(waited.code(), Code::kDeadlineExceeded) << waited.ToString();
  EXPECT_EQ(waited.message(), "the caller's deadline passed 50 ms ago");
  EXPECT_EQ(turns.waiting("c"), 2u);
  first.Leave();
  EXPECT_TRUE(third.Wait(model::CallContext()).ok());  // moved up past the one that left
  EXPECT_FALSE(late.UnpreparedSinceArrival());
}

TEST(ClaimTurnsTest, AnUnprepareCompletedAfterArrivalIsSeen) {
  ClaimTurns turns;
  auto before = turns.Arrive("c");  // arrives before the unprepare
  auto unprepare = turns.Arrive("c");
  auto prepare = turns.Arrive("c");  // arrives while the unprepare waits
  before.Leave();
  ASSERT_TRUE(unprepare.Wait(model::CallContext()).ok());
  unprepare.MarkUnprepared();
  unprepare.Leave();
  auto after = turns.Arrive("c");  // arrives after it completed
  ASSERT_TRUE(prepare.Wait(model::CallContext()).ok());
  EXPECT_TRUE(prepare.UnpreparedSinceArrival());
  prepare.Leave();
  ASSERT_TRUE(after.Wait(model::CallContext()).ok());
  EXPECT_FALSE(after.UnpreparedSinceArrival());
}

// ---- Preparer -----------------------------------------------------------------------------------

class PreparerOrderTest : public PreparerTestBase {
 protected:
  void SetUp() override {
    PreparerTestBase::SetUp();
    claims_.SetHook([this](const std::string& name) { gate_.Block(name); });
  }
  // Starts `fn` on a thread and waits until the claim's line has `in_line` operations.
  void StartAndQueue(std::function<void()> fn, const std::string& uid, size_t in_line) {
    threads_.emplace_back(std::move(fn));
    ASSERT_TRUE(Eventually([&] { return preparer_->InLine(uid) >= in_line; }))
        << "operation on " << uid << " did not queue";
  }
  void JoinAll() {
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  void TearDown() override {
    gate_.Open();
    JoinAll();
    PreparerTestBase::TearDown();
  }

  Gate gate_;
  std::vector<std::thread> threads_;
};

TEST_F(PreparerOrderTest, PrepareRacingUnprepareLeavesTheClaimUnprepared) {
  const auto ref = Ref("raced", Uid(1));
  claims_.Put(ClaimJson(ref.name, ref.uid, {Result{.device = "gpu-0"}}));
  gate_.Close(ref.name);  // the apiserver is slow
  model::PrepareResult prepared;
  std::string unprepared = "not run";
  StartAndQueue([&] { prepared = PrepareOne(ref); }, ref.uid, 1);
  ASSERT_TRUE(gate_.WaitEntered(1));
  // Kubelet gives up on the pod and unprepares while the prepare still reads the claim.
  StartAndQueue([&] { unprepared = UnprepareOne(ref); }, ref.uid, 2);
  gate_.Open();
  JoinAll();
  EXPECT_TRUE(prepared.ok()) << prepared.error;  // it arrived first and ran first
  EXPECT_EQ(unprepared, "");                     // then the unprepare removed it
  EXPECT_FALSE(Entry(ref.uid).has_value());
  EXPECT_FALSE(SpecExists(ref.uid));
  EXPECT_TRUE(CdiRootEntries().empty());
  ExpectConsistent();
  EXPECT_EQ(preparer_->InLine(ref.uid), 0u);
}

TEST_F(PreparerOrderTest, APrepareThatArrivedBeforeAnUnprepareCompletedIsRefused) {
  const auto ref = Ref("late", Uid(1));
  claims_.Put(ClaimJson(ref.name, ref.uid, {Result{.device = "gpu-0"}}));
  gate_.Close(ref.name);
  model::PrepareResult first, late;
  std::string unprepared = "not run";
  StartAndQueue([&] { first = PrepareOne(ref); }, ref.uid, 1);
  ASSERT_TRUE(gate_.WaitEntered(1));
  StartAndQueue([&] { unprepared = UnprepareOne(ref); }, ref.uid, 2);
  // A prepare (kubelet's retry of the first) arrives while the unprepare waits.
  StartAndQueue([&] { late = PrepareOne(ref); }, ref.uid, 3);
  const int reads = claims_.calls();
  gate_.Open();
  JoinAll();
  EXPECT_TRUE(first.ok()) << first.error;
  EXPECT_EQ(unprepared, "");
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error,
            "ResourceClaim default/late: not prepared: an unprepare of this claim completed while "
            "this prepare waited for its turn, and the later unprepare wins; kubelet retries the "
            "prepare if the claim is still needed");
  EXPECT_EQ(claims_.calls(), reads);  // the refused prepare did not even read the claim
  EXPECT_FALSE(Entry(ref.uid).has_value());
  EXPECT_FALSE(SpecExists(ref.uid));
  ExpectConsistent();
  // A prepare that arrives afterwards works.
  EXPECT_TRUE(PrepareOne(ref).ok());
  EXPECT_TRUE(SpecExists(ref.uid));
}

TEST_F(PreparerOrderTest, OperationsOnOneClaimRunInArrivalOrder) {
  const auto ref = Ref("fifo", Uid(1));
  claims_.Put(ClaimJson(ref.name, ref.uid, {Result{.device = "gpu-0"}}));
  PutAndPrepare(ref.name, ref.uid, "gpu-0");
  // Each prepare reads the claim (its allocation is re-checked); the reads show the order.
  std::mutex mu;
  std::vector<int> order;
  thread_local int who = -1;
  claims_.SetHook([&](const std::string& name) {
    gate_.Block(name);
    std::lock_guard<std::mutex> lock(mu);
    order.push_back(who);
  });
  gate_.Close(ref.name);
  constexpr int kOps = 8;
  std::vector<model::PrepareResult> results(kOps);
  for (int i = 0; i < kOps; ++i) {
    StartAndQueue(
        [&, i] {
          who = i;
          results[i] = PrepareOne(ref);
        },
        ref.uid, static_cast<size_t>(i + 1));
  }
  ASSERT_TRUE(gate_.WaitEntered(1));
  gate_.Open();
  JoinAll();
  std::vector<int> want(kOps);
  for (int i = 0; i < kOps; ++i) want[i] = i;
  EXPECT_EQ(order, want);
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.error;
  claims_.SetHook(nullptr);
}

TEST_F(PreparerOrderTest, APrepareWhoseDeadlinePassedWhileItWaitedDoesNothing) {
  const auto ref = Ref("waited", Uid(1));
  claims_.Put(ClaimJson(ref.name, ref.uid, {Result{.device = "gpu-0"}}));
  gate_.Close(ref.name);
  FakeClock clock;
  model::PrepareResult first, late;
  StartAndQueue([&] { first = PrepareOne(ref); }, ref.uid, 1);
  ASSERT_TRUE(gate_.WaitEntered(1));
  StartAndQueue(
      [&] {
        model::CallContext ctx(clock.Now() + milliseconds(500), nullptr, clock.Fn());
        late = preparer_->Prepare({ref}, ctx)[ref.uid];
      },
      ref.uid, 2);
  clock.Advance(milliseconds(600));
  // The late prepare gives up while the first one still reads the claim.
  ASSERT_TRUE(Eventually([&] { return preparer_->InLine(ref.uid) == 1; }));
  threads_.back().join();
  threads_.pop_back();
  EXPECT_FALSE(late.ok());
  EXPECT_EQ(late.error,
            "ResourceClaim default/waited: not prepared, nothing was done (it waited for an "
            "earlier operation on the claim): the caller's deadline passed 100 ms ago");
  EXPECT_EQ(claims_.calls(), 1);  // only the first prepare read the claim
  // The first prepare finds the claim gone: nothing prepared at all.
  claims_.Remove(ref.name);
  gate_.Open();
  JoinAll();
  EXPECT_FALSE(first.ok());
  EXPECT_FALSE(Entry(ref.uid).has_value());
  EXPECT_TRUE(CdiRootEntries().empty());
}

TEST_F(PreparerOrderTest, ACancelledPrepareDoesNothing) {
  const auto ref = Ref("cancelled", Uid(1));
  claims_.Put(ClaimJson(ref.name, ref.uid, {Result{.device = "gpu-0"}}));
  gate_.Close(ref.name);
  std::atomic<bool> cancelled{false};
  model::PrepareResult first, gone;
  StartAndQueue([&] { first = PrepareOne(ref); }, ref.uid, 1);
  ASSERT_TRUE(gate_.WaitEntered(1));
  StartAndQueue(
      [&] {
        model::CallContext ctx(std::nullopt, [&] { return cancelled.load(); });
        gone = preparer_->Prepare({ref}, ctx)[ref.uid];
      },
      ref.uid, 2);
  cancelled = true;
  ASSERT_TRUE(Eventually([&] { return preparer_->InLine(ref.uid) == 1; }));
  gate_.Open();
  JoinAll();
  EXPECT_TRUE(first.ok()) << first.error;
  EXPECT_FALSE(gone.ok());
  EXPECT_CONTAINS(gone.error, "the caller cancelled the call");
  EXPECT_EQ(claims_.calls(), 1);
}

// The deadline passes at each check in turn (the claim read, recording, device settings, the CDI
// write, recording it prepared): the prepare fails and leaves nothing behind.
TEST_F(PreparerOrderTest, ADeadlinePassingBeforeAnySideEffectLeavesNothing) {
  const auto ref = Ref("step", Uid(1));
  claims_.Put(ClaimJson(ref.name, ref.uid, {Result{.device = "gpu-0"}}));
  // How many times an unhurried prepare looks at the clock.
  std::atomic<int> looks{0};
  auto counting = [&](int expire_at) {
    return model::CallContext(Clock::time_point(milliseconds(1000)), nullptr, [&looks, expire_at] {
      int n = ++looks;
      return Clock::time_point(milliseconds(expire_at > 0 && n >= expire_at ? 2000 : 0));
    });
  };
  auto r = preparer_->Prepare({ref}, counting(0))[ref.uid];
  ASSERT_TRUE(r.ok()) << r.error;
  const int checks = looks.load();
  EXPECT_GE(checks, 5);  // turn, before recording, settings, CDI write, completion
  ASSERT_EQ(UnprepareOne(ref), "");
  for (int at = 1; at <= checks; ++at) {
    SCOPED_TRACE("deadline passes at check " + std::to_string(at));
    looks = 0;
    r = preparer_->Prepare({ref}, counting(at))[ref.uid];
    ASSERT_FALSE(r.ok());
    EXPECT_CONTAINS(r.error, "ResourceClaim default/step: not prepared");
    EXPECT_CONTAINS(r.error, "the caller's deadline passed 1000 ms ago");
    EXPECT_FALSE(Entry(ref.uid).has_value());
    EXPECT_FALSE(SpecExists(ref.uid));
    EXPECT_TRUE(CdiRootEntries().empty());
    ExpectConsistent();
  }
  // The idempotent path: a prepared claim asked again after the deadline is not answered.
  ASSERT_TRUE(PrepareOne(ref).ok());
  looks = 0;
  r = preparer_->Prepare({ref}, counting(1))[ref.uid];
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(SpecExists(ref.uid));  // and the earlier prepare stays
}

TEST_F(PreparerOrderTest, SweepTakesItsTurnBehindAPrepare) {
  // The sweep judges a claim gone, but kubelet's prepare of its new incarnation arrived first:
  // the sweep's second look comes after that prepare, sees the record changed, and keeps it.
  const auto ref = Ref("swept", Uid(1));
  PutAndPrepare(ref.name, ref.uid, "gpu-0");
  claims_.Remove(ref.name);
  model::PrepareResult prepared;
  base_opts_.sleep = [&](milliseconds) {
    claims_.Put(ClaimJson(ref.name, ref.uid, {Result{.device = "gpu-1"}}));
    gate_.Close(ref.name);
    StartAndQueue([&] { prepared = PrepareOne(ref); }, ref.uid, 1);
    ASSERT_TRUE(gate_.WaitEntered(1));
    threads_.emplace_back([this] {
      // Let the sweep queue behind the prepare, then let the prepare go on.
      EXPECT_TRUE(Eventually([&] { return preparer_->InLine(Uid(1)) == 2; }));
      gate_.Open();
    });
  };
  Reopen();
  EXPECT_EQ(preparer_->CleanupStale(), 0);
  JoinAll();
  EXPECT_TRUE(prepared.ok()) << prepared.error;
  auto entry = Entry(ref.uid);
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->devices.at(0).device, "gpu-1");
  ExpectConsistent();
}

}  // namespace
}  // namespace accel_dra::claims::testing
