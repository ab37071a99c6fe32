// Preparer under concurrency (run under ThreadSanitizer too): many claims at once, one claim from
// many threads, two claims racing for one device.

#include <atomic>
#include <barrier>
#include <thread>

#include "claims_test_util.h"

namespace accel_dra::claims::testing {
namespace {

class PreparerConcurrencyTest : public PreparerTestBase {};

TEST_F(PreparerConcurrencyTest, ManyClaimsPrepareAndUnprepareConcurrently) {
  constexpr int kSingles = 64;  // one Prepare call (and thread) each
  constexpr int kBatch = 16;    // one Prepare call carrying all of them
  std::vector<model::ClaimRef> singles, batch, all;
  for (int i = 0; i < kSingles + kBatch; ++i) {
    std::string name = "claim-" + std::to_string(i);
    claims_.Put(ClaimJson(name, Uid(i), {Result{.device = "gpu-" + std::to_string(i)}}));
    (i < kSingles ? singles : batch).push_back(Ref(name, Uid(i)));
    all.push_back(Ref(name, Uid(i)));
  }

  std::vector<model::PrepareResult> single_results(kSingles);
  std::map<std::string, model::PrepareResult> batch_results;
  {
    std::barrier start(kSingles + 1);
    std::vector<std::thread> threads;
    for (int i = 0; i < kSingles; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        auto out = preparer_->Prepare({singles[i]});
        single_results[i] = out[singles[i].uid];
      });
    }
    threads.emplace_back([&] {
      start.arrive_and_wait();
      batch_results = preparer_->Prepare(batch);
    });
    for (auto& t : threads) t.join();
  }
  for (int i = 0; i < kSingles; ++i) {
    ASSERT_TRUE(single_results[i].ok()) << singles[i].name << ": " << single_results[i].error;
    ASSERT_EQ(single_results[i].devices.size(), 1u);
    EXPECT_EQ(single_results[i].devices[0].device, "gpu-" + std::to_string(i));
  }
  ASSERT_EQ(batch_results.size(), static_cast<size_t>(kBatch));
  for (const auto& ref : batch) {
    ASSERT_TRUE(batch_results[ref.uid].ok()) << ref.name << ": " << batch_results[ref.uid].error;
  }
  EXPECT_EQ(SpecUids().size(), static_cast<size_t>(kSingles + kBatch));
  auto s = checkpoint_->Snapshot();
  EXPECT_EQ(s.claims.size(), static_cast<size_t>(kSingles + kBatch));
  for (const auto& [uid, c] : s.claims) EXPECT_EQ(c.state, ClaimState::kPrepareCompleted) << uid;
  ExpectConsistent();

  // Unprepare everything concurrently: 16 threads, 5 claims per call.
  {
    constexpr int kThreads = 16;
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    std::vector<std::string> errors(all.size());
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<model::ClaimRef> mine;
        for (size_t i = t; i < all.size(); i += kThreads) mine.push_back(all[i]);
        start.arrive_and_wait();
        auto out = preparer_->Unprepare(mine);
        for (size_t i = t; i < all.size(); i += kThreads) errors[i] = out[all[i].uid];
      });
    }
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(errors[i], "") << all[i].name;
  }
  EXPECT_TRUE(SpecUids().empty());
  EXPECT_TRUE(CdiRootEntries().empty());
  EXPECT_TRUE(checkpoint_->Snapshot().claims.empty());
  ExpectConsistent();
  Reopen();
  EXPECT_TRUE(checkpoint_->Snapshot().claims.empty());
}

TEST_F(PreparerConcurrencyTest, OneClaimPreparedAndUnpreparedFromManyThreads) {
  constexpr int kThreads = 4;
  constexpr int kIterations = 75;  // 300 operations in all
  const auto ref = Ref("contended", Uid(1));
  claims_.Put(ClaimJson(
      "contended", ref.uid,
      {Result{.request = "a", .device = "gpu-0"}, Result{.request = "b/x", .device = "gpu-1"}}));
  std::atomic<int> failures{0};
  std::atomic<int> prepares_ok{0};
  std::atomic<int> refused{0};  // an unprepare completed while the prepare waited: it wins
  const std::string kRefused =
      "ResourceClaim default/contended: not prepared: an unprepare of this claim completed while "
      "this prepare waited for its turn, and the later unprepare wins; kubelet retries the "
      "prepare if the claim is still needed";
  {
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < kIterations; ++i) {
          if ((i + t) % 2 == 0) {
            auto out = preparer_->Prepare({ref});
            const auto& r = out[ref.uid];
            if (r.error == kRefused) {
              refused++;
            } else if (!r.ok() || r.devices.size() != 2) {
              failures++;
              ADD_FAILURE() << "prepare: " << r.error;
            } else {
              prepares_ok++;
            }
          } else {
            auto out = preparer_->Unprepare({ref});
            if (!out[ref.uid].empty()) {
              failures++;
              ADD_FAILURE() << "unprepare: " << out[ref.uid];
            }
          }
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(prepares_ok.load(), 0);
  RecordProperty("refused_prepares", refused.load());
  auto entry = Entry(ref.uid);
  if (entry) {
    EXPECT_EQ(entry->state, ClaimState::kPrepareCompleted);
  }
  EXPECT_EQ(SpecExists(ref.uid), entry.has_value());
  ExpectConsistent();
  // What is durable agrees as well.
  Reopen();
  entry = Entry(ref.uid);
  if (entry) {
    EXPECT_EQ(entry->state, ClaimState::kPrepareCompleted);
  }
  EXPECT_EQ(SpecExists(ref.uid), entry.has_value());
  ExpectConsistent();
  // Whichever operation came last, one more of each leaves a clean state.
  EXPECT_TRUE(PrepareOne(ref).ok());
  EXPECT_TRUE(SpecExists(ref.uid));
  EXPECT_EQ(UnprepareOne(ref), "");
  EXPECT_TRUE(CdiRootEntries().empty());
  EXPECT_TRUE(checkpoint_->Snapshot().claims.empty());
}

TEST_F(PreparerConcurrencyTest, TwoClaimsRaceForOneDevice) {
  constexpr int kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string dev = "gpu-" + std::to_string(round);
    const auto a = Ref("a-" + std::to_string(round), Uid(2 * round));
    const auto b = Ref("b-" + std::to_string(round), Uid(2 * round + 1));
    claims_.Put(ClaimJson(a.name, a.uid, {Result{.device = dev}}));
    claims_.Put(ClaimJson(b.name, b.uid, {Result{.device = dev}}));
    model::PrepareResult ra, rb;
    {
      std::barrier start(2);
      std::thread ta([&] {
        start.arrive_and_wait();
        ra = preparer_->Prepare({a})[a.uid];
      });
      std::thread tb([&] {
        start.arrive_and_wait();
        rb = preparer_->Prepare({b})[b.uid];
      });
      ta.join();
      tb.join();
    }
    ASSERT_NE(ra.ok(), rb.ok()) << "exactly one must win: a=" << ra.error << " b=" << rb.error;
    const auto& winner = ra.ok() ? a : b;
    const auto& loser = ra.ok() ? b : a;
    const auto& lost = ra.ok() ? rb : ra;
    EXPECT_CONTAINS(lost.error, "device " + dev + " is already in use by ResourceClaim default/" +
                                    winner.name + " (uid " + winner.uid + ")");
    EXPECT_TRUE(SpecExists(winner.uid));
    EXPECT_FALSE(SpecExists(loser.uid));
    EXPECT_FALSE(Entry(loser.uid).has_value());
    ExpectConsistent();
  }
  EXPECT_EQ(checkpoint_->Snapshot().claims.size(), static_cast<size_t>(kRounds));
}

// The same race inside one Prepare call (claims of one call are prepared in parallel).
TEST_F(PreparerConcurrencyTest, TwoClaimsOfOneCallRaceForOneDevice) {
  claims_.Put(ClaimJson("x", Uid(1), {Result{.device = "gpu-9"}}));
  claims_.Put(ClaimJson("y", Uid(2), {Result{.device = "gpu-9"}}));
  auto out = preparer_->Prepare({Ref("x", Uid(1)), Ref("y", Uid(2))});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NE(out[Uid(1)].ok(), out[Uid(2)].ok());
  EXPECT_CONTAINS(out[Uid(1)].error + out[Uid(2)].error, "device gpu-9 is already in use");
  ExpectConsistent();
}

}  // namespace
}  // namespace accel_dra::claims::testing
