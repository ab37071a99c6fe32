// Doubt is not deletion (issue 11, point 2): the stale-claim sweep unprepares a claim only when
// two reads agree that it is gone, re-created or no longer allocated to this node's pool; a read
// error, a bare HTTP 404 included, keeps it. The idempotent prepare path re-checks that the
// claim's allocation is the one recorded.

#include <gmock/gmock.h>

#include "accel_dra/kube/client.h"
#include "claims_test_util.h"
#include "fake_apiserver.h"

namespace accel_dra::claims::testing {
namespace {

using kube::testing::FakeApiServer;
using kube::testing::FakeRequest;
using kube::testing::FakeResponse;
using ::testing::HasSubstr;

Status ApiNotFound(const std::string& name) {
  return NotFound("GET .../resourceclaims/" + name + ": HTTP 404 NotFound: not found");
}

// What the kube client makes of a bare "404 page not found".
Status BareNotFound() {
  Status st = Unavailable(
      "GET /apis/resource.k8s.io/v1/namespaces/default/resourceclaims/c: HTTP 404 NotFound: 404 "
      "page not found (not taken as \"not found\": the answer is not a Kubernetes Status)");
  st.set_http_status(404);
  return st;
}

using PreparerStaleTest = PreparerTestBase;

TEST_F(PreparerStaleTest, SweepKeepsAClaimThatASecondReadFindsAgain) {
  auto ref = PutAndPrepare("flaky", Uid(1), "gpu-0");
  // The first read says gone, the second finds the claim: kept.
  claims_.Script("flaky", {ApiNotFound("flaky")});
  EXPECT_EQ(preparer_->CleanupStale(), 0);
  EXPECT_EQ(sweep_pauses_.load(), 1);
  EXPECT_TRUE(Entry(ref.uid).has_value());
  EXPECT_TRUE(SpecExists(ref.uid));
  // A read error at the second read keeps it too.
  claims_.Script("flaky", {ApiNotFound("flaky"), Unavailable("apiserver is down")});
  EXPECT_EQ(preparer_->CleanupStale(), 0);
  EXPECT_TRUE(SpecExists(ref.uid));
  // Both reads say gone: cleaned up.
  claims_.Script("flaky", {ApiNotFound("flaky"), ApiNotFound("flaky")});
  EXPECT_EQ(preparer_->CleanupStale(), 1);
  EXPECT_FALSE(Entry(ref.uid).has_value());
  EXPECT_FALSE(SpecExists(ref.uid));
  ExpectConsistent();
}

TEST_F(PreparerStaleTest, SweepPausesOnceAndOnlyWhenAClaimLooksStale) {
  PutAndPrepare("a", Uid(1), "gpu-0");
  PutAndPrepare("b", Uid(2), "gpu-1");
  EXPECT_EQ(preparer_->CleanupStale(), 0);
  EXPECT_EQ(sweep_pauses_.load(), 0);
  claims_.Remove("a");
  claims_.Remove("b");
  const int reads = claims_.calls();
  EXPECT_EQ(preparer_->CleanupStale(), 2);
  EXPECT_EQ(sweep_pauses_.load(), 1);
  EXPECT_EQ(claims_.calls() - reads, 4);  // two reads each
}

TEST_F(PreparerStaleTest, SweepKeepsClaimsOnABare404) {
  auto ref = PutAndPrepare("running", Uid(1), "gpu-0");
  claims_.PutError("running", BareNotFound());
  EXPECT_EQ(preparer_->CleanupStale(), 0);
  EXPECT_EQ(sweep_pauses_.load(), 0);  // not even a suspect
  EXPECT_TRUE(Entry(ref.uid).has_value());
  EXPECT_TRUE(SpecExists(ref.uid));
}

TEST_F(PreparerStaleTest, SweepCleansUpAClaimNoLongerAllocatedToThisPool) {
  auto cleared = PutAndPrepare("cleared", Uid(1), "gpu-0");
  auto moved = PutAndPrepare("moved", Uid(2), "gpu-1");
  auto mixed = PutAndPrepare("mixed", Uid(3), "gpu-2");
  auto other_driver = PutAndPrepare("other-driver", Uid(4), "gpu-3");
  // Deallocated (status.allocation gone, the claim kept).
  claims_.Put(ClaimJson("cleared", cleared.uid, {}, Json::array(), /*allocated=*/false));
  // Allocated again, to another node's pool.
  claims_.Put(ClaimJson("moved", moved.uid, {Result{.device = "gpu-1", .pool = "node-b"}}));
  // Still has a device of ours in this pool (and one elsewhere): kept.
  claims_.Put(ClaimJson("mixed", mixed.uid,
                        {Result{.request = "a", .device = "gpu-2"},
                         Result{.request = "b", .device = "gpu-7", .pool = "node-b"}}));
  // Only devices of another driver now.
  claims_.Put(ClaimJson("other-driver", other_driver.uid,
                        {Result{.device = "nic-0", .driver = kOtherDriver, .pool = "node-a"}}));
  EXPECT_EQ(preparer_->CleanupStale(), 3);
  EXPECT_FALSE(Entry(cleared.uid).has_value());
  EXPECT_FALSE(SpecExists(cleared.uid));
  EXPECT_FALSE(Entry(moved.uid).has_value());
  EXPECT_FALSE(SpecExists(moved.uid));
  EXPECT_TRUE(Entry(mixed.uid).has_value());
  EXPECT_TRUE(SpecExists(mixed.uid));
  EXPECT_FALSE(Entry(other_driver.uid).has_value());
  ExpectConsistent();
  // The freed devices can be prepared for another claim.
  PutAndPrepare("next", Uid(5), "gpu-0");
  EXPECT_TRUE(Entry(Uid(5)).has_value());
}

TEST_F(PreparerStaleTest, SweepLeavesAClaimThatWasPreparedAgainMeanwhile) {
  // Between the sweep's two reads kubelet prepares the claim again for a new allocation: the
  // record the sweep judged is gone, so it does nothing (the new record is judged next time).
  const auto ref = Ref("realloc", Uid(1));
  base_opts_.sleep = [&](std::chrono::milliseconds) {
    claims_.Put(ClaimJson("realloc", ref.uid, {Result{.device = "gpu-5"}}));
    auto r = PrepareOne(ref);  // the idempotent path notices the new allocation
    EXPECT_TRUE(r.ok()) << r.error;
    claims_.Put(ClaimJson("realloc", ref.uid, {}, Json::array(), /*allocated=*/false));
  };
  Reopen();
  PutAndPrepare("realloc", ref.uid, "gpu-0");
  claims_.Put(ClaimJson("realloc", ref.uid, {}, Json::array(), /*allocated=*/false));
  EXPECT_EQ(preparer_->CleanupStale(), 0);
  auto entry = Entry(ref.uid);
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->devices.at(0).device, "gpu-5");
  EXPECT_TRUE(SpecExists(ref.uid));
  ExpectConsistent();
}

// ---- the idempotent path ------------------------------------------------------------------------

TEST_F(PreparerStaleTest, IdempotentPrepareAnswersFromTheCheckpointWhenTheAllocationIsUnchanged) {
  auto ref = PutAndPrepare("same", Uid(1), "gpu-0");
  const int writes = env_.writes();
  auto again = PrepareOne(ref);
  ASSERT_TRUE(again.ok()) << again.error;
  EXPECT_EQ(again.devices, Entry(ref.uid)->devices);
  EXPECT_EQ(env_.writes(), writes);  // no side effect
}

TEST_F(PreparerStaleTest, IdempotentPrepareRePreparesAStaleRecord) {
  auto ref = PutAndPrepare("realloc", Uid(1), "gpu-0");
  // Deallocated and allocated again, to another device of this node.
  claims_.Put(ClaimJson("realloc", ref.uid, {Result{.device = "gpu-3"}}));
  auto r = PrepareOne(ref);
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.devices.size(), 1u);
  EXPECT_EQ(r.devices[0].device, "gpu-3");
  EXPECT_EQ(Entry(ref.uid)->devices.at(0).device, "gpu-3");
  EXPECT_THAT(ReadAll(dirs_->SpecPath(ref.uid)), HasSubstr("accel3"));
  EXPECT_THAT(ReadAll(dirs_->SpecPath(ref.uid)), ::testing::Not(HasSubstr("accel0\"")));
  ExpectConsistent();
  // gpu-0 is free again.
  PutAndPrepare("other", Uid(2), "gpu-0");
}

TEST_F(PreparerStaleTest, IdempotentPrepareOfAClaimNoLongerHereUnpreparesAndSaysWhy) {
  auto moved = PutAndPrepare("moved", Uid(1), "gpu-0");
  claims_.Put(ClaimJson("moved", moved.uid, {Result{.device = "gpu-0", .pool = "node-b"}}));
  auto r = PrepareOne(moved);
  EXPECT_FALSE(r.ok());
  EXPECT_CONTAINS(r.error, "is allocated from pool node-b, but this plugin serves pool node-a");
  EXPECT_FALSE(Entry(moved.uid).has_value());
  EXPECT_FALSE(SpecExists(moved.uid));

  auto recreated = PutAndPrepare("recreated", Uid(2), "gpu-1");
  claims_.Put(ClaimJson("recreated", Uid(22), {Result{.device = "gpu-1"}}));
  r = PrepareOne(recreated);
  EXPECT_FALSE(r.ok());
  EXPECT_CONTAINS(r.error, "has UID " + Uid(22) + " but kubelet asked for UID " + Uid(2));
  EXPECT_FALSE(Entry(recreated.uid).has_value());
  ExpectConsistent();
}

TEST_F(PreparerStaleTest, IdempotentPrepareKeepsTheAnswerWhenTheClaimCannotBeRead) {
  auto ref = PutAndPrepare("unreadable", Uid(1), "gpu-0");
  const auto recorded = Entry(ref.uid)->devices;
  for (const Status& st : {BareNotFound(), Unavailable("apiserver is down"), ApiNotFound("x")}) {
    claims_.PutError("unreadable", st);
    auto r = PrepareOne(ref);
    ASSERT_TRUE(r.ok()) << st.ToString() << ": " << r.error;
    EXPECT_EQ(r.devices, recorded);
    EXPECT_TRUE(SpecExists(ref.uid));
  }
}

// ---- through the real kube client ---------------------------------------------------------------

// A Preparer whose claims come from a fake apiserver through kube::ResourceApi, as in the plugin.
class PreparerOverKubeTest : public PreparerTestBase {
 protected:
  void SetUp() override {
    PreparerTestBase::SetUp();
    kube::RestConfig c;
    c.server = server_.url();
    c.timeout = std::chrono::milliseconds(3000);
    kube::RetryPolicy retry;
    retry.max_attempts = 1;
    auto client = kube::Client::Create(c, retry);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(client).value();
    api_ = std::make_unique<kube::ResourceApi>(client_.get());
    server_.SetHandler([this](const FakeRequest& r) { return Answer(r); });
    getter_ = [this](const std::string& ns, const std::string& name) {
      return api_->GetResourceClaim(ns, name);
    };
    Reopen();
  }
  void TearDown() override {
    PreparerTestBase::TearDown();
    api_.reset();
    client_.reset();
  }

  // Discovery says v1; a claim GET answers per mode_.
  FakeResponse Answer(const FakeRequest& r) {
    if (r.target == "/apis/resource.k8s.io") {
      return FakeResponse::Json(200, R"({"kind":"APIGroup","versions":[{"version":"v1"}]})");
    }
    std::lock_guard<std::mutex> lock(mu_);
    const std::string name = r.target.substr(r.target.rfind('/') + 1);
    if (mode_ == Mode::kPageNotFound) return FakeResponse::PageNotFound();
    if (mode_ == Mode::kGone)
      return FakeResponse::NotFound("resource.k8s.io", "resourceclaims", name);
    if (mode_ == Mode::kOtherName) {
      return FakeResponse::NotFound("resource.k8s.io", "resourceclaims", name + "-other");
    }
    auto it = objects_.find(name);
    if (it == objects_.end())
      return FakeResponse::NotFound("resource.k8s.io", "resourceclaims", name);
    return FakeResponse::Json(200, it->second.dump());
  }
  enum class Mode { kServe, kPageNotFound, kGone, kOtherName };
  void Set(Mode m) {
    std::lock_guard<std::mutex> lock(mu_);
    mode_ = m;
  }
  void Serve(const Json& claim) {
    std::lock_guard<std::mutex> lock(mu_);
    objects_[claim["metadata"]["name"].get<std::string>()] = claim;
  }

  FakeApiServer server_;
  std::unique_ptr<kube::Client> client_;
  std::unique_ptr<kube::ResourceApi> api_;
  std::mutex mu_;
  Mode mode_ = Mode::kServe;
  std::map<std::string, Json> objects_;
};

TEST_F(PreparerOverKubeTest, BarePageNotFoundUnpreparesNothing) {
  Serve(ClaimJson("running", Uid(1), {Result{.device = "gpu-0"}}));
  auto ref = Ref("running", Uid(1));
  auto r = PrepareOne(ref);
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_TRUE(SpecExists(ref.uid));
  const std::string spec = ReadAll(dirs_->SpecPath(ref.uid));

  // The apiserver stops serving resource.k8s.io/v1 for a while (an upgrade).
  Set(Mode::kPageNotFound);
  for (int sweep = 0; sweep < 3; ++sweep) EXPECT_EQ(preparer_->CleanupStale(), 0);
  EXPECT_EQ(sweep_pauses_.load(), 0);
  // A Status NotFound about another object proves nothing either.
  Set(Mode::kOtherName);
  EXPECT_EQ(preparer_->CleanupStale(), 0);
  ASSERT_TRUE(Entry(ref.uid).has_value());
  EXPECT_EQ(ReadAll(dirs_->SpecPath(ref.uid)), spec);
  // Kubelet asking again is answered from the checkpoint.
  Set(Mode::kPageNotFound);
  auto again = PrepareOne(ref);
  EXPECT_TRUE(again.ok()) << again.error;
  EXPECT_EQ(again.devices, r.devices);

  // A new claim cannot be read: the message says what the 404 was.
  Serve(ClaimJson("new", Uid(2), {Result{.device = "gpu-1"}}));
  auto fresh = PrepareOne(Ref("new", Uid(2)));
  EXPECT_FALSE(fresh.ok());
  EXPECT_CONTAINS(fresh.error,
                  "cannot read ResourceClaim default/new: the apiserver answered HTTP "
                  "404 without saying that the claim does not exist (it may not "
                  "serve this resource.k8s.io version right now, e.g. during an "
                  "upgrade); kubelet retries");
  EXPECT_CONTAINS(fresh.error, "404 page not found");
  EXPECT_FALSE(Entry(Uid(2)).has_value());

  // The apiserver's own NotFound for the claim, twice: cleaned up.
  Set(Mode::kGone);
  EXPECT_EQ(preparer_->CleanupStale(), 1);
  EXPECT_FALSE(Entry(ref.uid).has_value());
  EXPECT_FALSE(SpecExists(ref.uid));
  ExpectConsistent();
}

}  // namespace
}  // namespace accel_dra::claims::testing
