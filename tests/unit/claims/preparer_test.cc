// Preparer: happy path, idempotency, unprepare, per-claim errors, recovery from constructed
// crash states, stale-claim cleanup. Real checkpoint, CDI writer and simulated inventory in a
// temp directory; the claims come from canned v1 ResourceClaim JSON.

#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "claims_test_util.h"

namespace accel_dra::claims::testing {
namespace {

TEST(PreparerBaseRequestName, StripsTheSubrequest) {
  EXPECT_EQ(BaseRequestName("main/sub"), "main");
  EXPECT_EQ(BaseRequestName("main"), "main");
  EXPECT_EQ(BaseRequestName(""), "");
}

class PreparerTest : public PreparerTestBase {};

std::vector<std::string> AllEnv(const cdi::Spec& spec) {
  std::vector<std::string> env = spec.container_edits.env;
  for (const auto& d : spec.devices) {
    env.insert(env.end(), d.container_edits.env.begin(), d.container_edits.env.end());
  }
  return env;
}

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST_F(PreparerTest, PreparesOurDevicesWritesTheSpecAndRecordsTheClaim) {
  const std::string uid = Uid(1);
  Json configs = Json::array({
      // Class config for every request: time slicing.
      OpaqueConfig("FromClass", {},
                   DeviceConfigParams(
                       {{"strategy", "TimeSlicing"}, {"timeSlicing", {{"interval", "Short"}}}})),
      // Another driver's config is skipped, whatever it holds.
      OpaqueConfig("FromClaim", {}, {{"whatever", 1}}, kOtherDriver),
      // Claim config for request "other": space partitioning.
      OpaqueConfig("FromClaim", {"other"},
                   DeviceConfigParams({{"strategy", "SpacePartitioning"},
                                       {"spacePartitioning", {{"partitionCount", 4}}}})),
  });
  claims_.Put(ClaimJson("c1", uid,
                        {Result{.request = "main/sub", .device = "gpu-0"},
                         Result{.request = "nic", .device = "eth0", .driver = kOtherDriver},
                         Result{.request = "other", .device = "gpu-1"}},
                        configs));

  auto out = preparer_->Prepare({Ref("c1", uid)});
  ASSERT_EQ(out.size(), 1u);
  const auto& r = out[uid];
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.devices.size(), 2u);
  EXPECT_EQ(r.devices[0].request_names, std::vector<std::string>{"main"});
  EXPECT_EQ(r.devices[0].pool, kNode);
  EXPECT_EQ(r.devices[0].device, "gpu-0");
  EXPECT_EQ(r.devices[0].cdi_device_ids,
            std::vector<std::string>{"k8s.accel-dra.dev/device=" + uid + "-gpu-0"});
  EXPECT_FALSE(r.devices[0].share_id.has_value());
  EXPECT_EQ(r.devices[1].request_names, std::vector<std::string>{"other"});
  EXPECT_EQ(r.devices[1].pool, kNode);
  EXPECT_EQ(r.devices[1].device, "gpu-1");
  EXPECT_EQ(r.devices[1].cdi_device_ids,
            std::vector<std::string>{"k8s.accel-dra.dev/device=" + uid + "-gpu-1"});

  // The CDI spec.
  fs::path spec_path = dirs_->SpecPath(uid);
  ASSERT_TRUE(fs::exists(spec_path));
  EXPECT_EQ(fs::status(spec_path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
  auto spec = cdi::ParseJson(ReadAll(spec_path));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->kind, "k8s.accel-dra.dev/device");
  ASSERT_EQ(spec->devices.size(), 2u);
  EXPECT_EQ(spec->devices[0].name, uid + "-gpu-0");
  EXPECT_EQ(spec->devices[1].name, uid + "-gpu-1");
  ASSERT_EQ(spec->devices[0].container_edits.device_nodes.size(), 1u);
  EXPECT_EQ(spec->devices[0].container_edits.device_nodes[0].path, "/dev/accel0");
  ASSERT_EQ(spec->devices[1].container_edits.device_nodes.size(), 1u);
  EXPECT_EQ(spec->devices[1].container_edits.device_nodes[0].path, "/dev/accel1");
  auto env = AllEnv(*spec);
  for (const std::string& want : std::vector<std::string>{
           cdi::VisibleDevicesVariable(uid) + "=gpu-0,gpu-1",
           "ACCEL_DEVICE_GPU_0=gpu-0",
           "ACCEL_DEVICE_GPU_0_RESOURCE_CLAIM=default/c1",
           "ACCEL_DEVICE_GPU_0_RESOURCE_CLAIM_UID=" + uid,
           "ACCEL_DEVICE_GPU_0_SHARING_STRATEGY=TimeSlicing",
           "ACCEL_DEVICE_GPU_0_TIMESLICE_INTERVAL=Short",
           "ACCEL_DEVICE_GPU_1=gpu-1",
           "ACCEL_DEVICE_GPU_1_RESOURCE_CLAIM=default/c1",
           "ACCEL_DEVICE_GPU_1_RESOURCE_CLAIM_UID=" + uid,
           "ACCEL_DEVICE_GPU_1_SHARING_STRATEGY=SpacePartitioning",
           "ACCEL_DEVICE_GPU_1_PARTITION_COUNT=4",
       }) {
    EXPECT_TRUE(Has(env, want)) << "spec lacks " << want << "\n" << ReadAll(spec_path);
  }
  for (const auto& e : env) EXPECT_EQ(e.find("ETH0"), std::string::npos) << e;

  // The checkpoint (in memory and durable).
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "in memory" : "after reopening");
    auto entry = Entry(uid);
    ASSERT_TRUE(entry.has_value());
    EXPECT_EQ(entry->state, ClaimState::kPrepareCompleted);
    EXPECT_EQ(entry->ns, kNamespace);
    EXPECT_EQ(entry->name, "c1");
    EXPECT_EQ(entry->cdi_spec_file, spec_path.filename().string());
    ASSERT_EQ(entry->devices.size(), 2u);
    EXPECT_EQ(entry->devices[0].device, "gpu-0");
    EXPECT_EQ(entry->devices[0].cdi_device_ids, r.devices[0].cdi_device_ids);
    EXPECT_TRUE(entry->prepare_completed_at.has_value());
    ExpectConsistent();
    Reopen();
  }

  // The container runtime's view: the file validates against the CDI schema.
  std::string cmd = "python3 " ACCEL_DRA_SOURCE_DIR "/cdi/validate.py '" + spec_path.string() +
                    "' > /dev/null 2>&1";
  int status = std::system(cmd.c_str());
  ASSERT_NE(status, -1);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "cdi/validate.py rejected\n" << ReadAll(spec_path);
}

TEST_F(PreparerTest, EmptyRequestSucceeds) { EXPECT_TRUE(preparer_->Prepare({}).empty()); }

TEST_F(PreparerTest, ShareIdIsPassedOn) {
  const std::string uid = Uid(2);
  claims_.Put(ClaimJson(
      "s", uid, {Result{.device = "gpu-3", .share_id = "0f0e0d0c-aaaa-4bbb-8ccc-000000000001"}}));
  auto r = PrepareOne(Ref("s", uid));
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.devices.size(), 1u);
  EXPECT_EQ(r.devices[0].share_id, "0f0e0d0c-aaaa-4bbb-8ccc-000000000001");
}

TEST_F(PreparerTest, TwoSharesOfOneDeviceInOneClaimGetOneCdiDevice) {
  const std::string uid = Uid(8);
  claims_.Put(ClaimJson("two-shares", uid,
                        {Result{.request = "a", .device = "gpu-6", .share_id = "share-a"},
                         Result{.request = "b", .device = "gpu-6", .share_id = "share-b"}}));
  auto r = PrepareOne(Ref("two-shares", uid));
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.devices.size(), 2u);
  EXPECT_EQ(r.devices[0].request_names, std::vector<std::string>{"a"});
  EXPECT_EQ(r.devices[1].request_names, std::vector<std::string>{"b"});
  EXPECT_EQ(r.devices[0].share_id, "share-a");
  EXPECT_EQ(r.devices[1].share_id, "share-b");
  EXPECT_EQ(r.devices[0].cdi_device_ids, r.devices[1].cdi_device_ids);
  auto spec = cdi::ParseJson(ReadAll(dirs_->SpecPath(uid)));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->devices.size(), 1u);
  EXPECT_EQ(spec->devices[0].name, uid + "-gpu-6");

  // The one CDI device cannot carry two different sharing settings.
  claims_.Put(ClaimJson(
      "two-settings", Uid(9),
      {Result{.request = "a", .device = "gpu-7", .share_id = "share-a"},
       Result{.request = "b", .device = "gpu-7", .share_id = "share-b"}},
      Json::array(
          {OpaqueConfig("FromClaim", {"b"}, DeviceConfigParams({{"strategy", "TimeSlicing"}}))})));
  r = PrepareOne(Ref("two-settings", Uid(9)));
  EXPECT_FALSE(r.ok());
  EXPECT_CONTAINS(r.error,
                  "device gpu-7 is allocated to two requests of the claim with different "
                  "sharing settings");
  EXPECT_FALSE(Entry(Uid(9)).has_value());
  ExpectConsistent();
}

TEST_F(PreparerTest, SecondPrepareIsAnsweredFromTheCheckpointWithoutSideEffects) {
  const std::string uid = Uid(3);
  claims_.Put(ClaimJson(
      "idem", uid,
      {Result{.request = "a", .device = "gpu-0"}, Result{.request = "b/x", .device = "gpu-1"}}));
  auto first = preparer_->Prepare({Ref("idem", uid)});
  ASSERT_TRUE(first[uid].ok()) << first[uid].error;
  const int calls = claims_.calls();
  const int writes = env_.writes();
  const int removes = env_.removes();
  const auto ckpt_writes = checkpoint_->stats().writes;
  const std::string spec = ReadAll(dirs_->SpecPath(uid));
  const auto mtime = fs::last_write_time(dirs_->SpecPath(uid));

  auto second = preparer_->Prepare({Ref("idem", uid)});
  EXPECT_EQ(second, first);
  // One read re-checks that the allocation is still the one recorded (issue 11); nothing else.
  EXPECT_EQ(claims_.calls(), calls + 1) << "the allocation was not re-checked exactly once";
  EXPECT_EQ(env_.writes(), writes) << "something was written";
  EXPECT_EQ(env_.removes(), removes);
  EXPECT_EQ(checkpoint_->stats().writes, ckpt_writes);
  EXPECT_EQ(ReadAll(dirs_->SpecPath(uid)), spec);
  EXPECT_EQ(fs::last_write_time(dirs_->SpecPath(uid)), mtime);

  // Also after a restart, and even when the claim can no longer be read.
  Reopen();
  claims_.Remove("idem");
  const int writes_after_reopen = env_.writes();
  EXPECT_EQ(preparer_->Prepare({Ref("idem", uid)}), first);
  EXPECT_EQ(claims_.calls(), calls + 2);
  EXPECT_EQ(env_.writes(), writes_after_reopen);
}

// Prioritized list (firstAvailable): results name "<request>/<subrequest>". A config naming the
// parent applies to a result of any of its subrequests, one naming "parent/sub" only to that
// subrequest (and beats the parent's); kubelet and the checkpoint get the base name; the CDI
// names and variables carry no '/'.
TEST_F(PreparerTest, SubrequestResultsGetTheParentsOrTheirOwnConfig) {
  const std::string uid = Uid(10);
  auto sharing = [](const std::string& strategy) {
    Json s = {{"strategy", strategy}};
    if (strategy == "SpacePartitioning") s["spacePartitioning"] = {{"partitionCount", 2}};
    return DeviceConfigParams(s);
  };
  Json configs = Json::array({
      OpaqueConfig("FromClaim", {"a"}, sharing("TimeSlicing")),             // a/* → TimeSlicing
      OpaqueConfig("FromClaim", {"b/large"}, sharing("TimeSlicing")),       // not b/small
      OpaqueConfig("FromClaim", {"c"}, sharing("TimeSlicing")),             // c/* ...
      OpaqueConfig("FromClaim", {"c/fast"}, sharing("SpacePartitioning")),  // ... but c/fast
  });
  claims_.Put(ClaimJson("prio", uid,
                        {Result{.request = "a/big", .device = "gpu-0"},
                         Result{.request = "b/small", .device = "gpu-1"},
                         Result{.request = "c/fast", .device = "gpu-2"}},
                        configs));
  auto r = PrepareOne(Ref("prio", uid));
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.devices.size(), 3u);
  EXPECT_EQ(r.devices[0].request_names, std::vector<std::string>{"a"});
  EXPECT_EQ(r.devices[1].request_names, std::vector<std::string>{"b"});
  EXPECT_EQ(r.devices[2].request_names, std::vector<std::string>{"c"});
  EXPECT_EQ(r.devices[0].sharing.strategy, model::SharingStrategy::kTimeSlicing);
  EXPECT_EQ(r.devices[1].sharing.strategy, model::SharingStrategy::kExclusive);
  EXPECT_EQ(r.devices[2].sharing.strategy, model::SharingStrategy::kSpacePartitioning);
  auto entry = Entry(uid);
  ASSERT_TRUE(entry.has_value());
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(entry->devices[i].request_names, r.devices[i].request_names);
    EXPECT_EQ(entry->devices[i].sharing, r.devices[i].sharing);
  }
  auto spec = cdi::ParseJson(ReadAll(dirs_->SpecPath(uid)));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  auto env = AllEnv(*spec);
  EXPECT_TRUE(Has(env, "ACCEL_DEVICE_GPU_0_SHARING_STRATEGY=TimeSlicing"));
  EXPECT_TRUE(Has(env, "ACCEL_DEVICE_GPU_1_SHARING_STRATEGY=Exclusive"));
  EXPECT_TRUE(Has(env, "ACCEL_DEVICE_GPU_2_SHARING_STRATEGY=SpacePartitioning"));
  for (const auto& e : env) {
    std::string name = e.substr(0, e.find('='));
    EXPECT_EQ(name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"), std::string::npos)
        << e;
  }
  for (const auto& d : spec->devices) EXPECT_EQ(d.name.find('/'), std::string::npos) << d.name;
  for (const auto& d : r.devices) {
    EXPECT_EQ(d.cdi_device_ids,
              std::vector<std::string>{"k8s.accel-dra.dev/device=" + uid + "-" + d.device});
  }
  // Answered from the checkpoint the second time (base names compare equal).
  const auto ckpt_writes = checkpoint_->stats().writes;
  EXPECT_EQ(PrepareOne(Ref("prio", uid)).devices, r.devices);
  EXPECT_EQ(checkpoint_->stats().writes, ckpt_writes);
}

// A claim allocated again (same UID) to another subrequest on another device is not answered
// from the checkpoint: the recorded device differs, so it is prepared afresh.
TEST_F(PreparerTest, AnotherSubrequestOnAnotherDeviceIsPreparedAfresh) {
  const std::string uid = Uid(11);
  claims_.Put(ClaimJson("prio2", uid, {Result{.request = "g/first", .device = "gpu-4"}}));
  auto r = PrepareOne(Ref("prio2", uid));
  ASSERT_TRUE(r.ok()) << r.error;
  claims_.Put(ClaimJson("prio2", uid, {Result{.request = "g/second", .device = "gpu-5"}}));
  r = PrepareOne(Ref("prio2", uid));
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.devices.size(), 1u);
  EXPECT_EQ(r.devices[0].device, "gpu-5");
  EXPECT_EQ(r.devices[0].request_names, std::vector<std::string>{"g"});
  auto entry = Entry(uid);
  ASSERT_TRUE(entry.has_value());
  ASSERT_EQ(entry->devices.size(), 1u);
  EXPECT_EQ(entry->devices[0].device, "gpu-5");
  ExpectConsistent();
}

TEST_F(PreparerTest, UnprepareRemovesSpecAndEntry) {
  auto ref = PutAndPrepare("u", Uid(4), "gpu-2");
  ASSERT_TRUE(SpecExists(ref.uid));
  claims_.Remove("u");  // unprepare does not need the claim
  EXPECT_EQ(UnprepareOne(ref), "");
  EXPECT_FALSE(SpecExists(ref.uid));
  EXPECT_FALSE(Entry(ref.uid).has_value());
  EXPECT_EQ(UnprepareOne(ref), "") << "second unprepare";
  Reopen();
  EXPECT_TRUE(checkpoint_->Snapshot().claims.empty());
  EXPECT_TRUE(CdiRootEntries().empty());
  // The device is free again.
  PutAndPrepare("u2", Uid(5), "gpu-2");
}

TEST_F(PreparerTest, UnprepareOfUnknownClaimsSucceeds) {
  auto out = preparer_->Unprepare({Ref("never", Uid(6)), Ref("never2", Uid(7))});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[Uid(6)], "");
  EXPECT_EQ(out[Uid(7)], "");
  EXPECT_TRUE(preparer_->Unprepare({}).empty());
}

// ---- Per-claim errors --------------------------------------------------------------------------

class PreparerErrorTest : public PreparerTestBase {
 protected:
  // Prepares `ref`, expects failure with every fragment in the message, and no trace of it.
  std::string ExpectFails(const model::ClaimRef& ref, const std::vector<std::string>& fragments) {
    auto r = PrepareOne(ref);
    EXPECT_FALSE(r.ok()) << "prepare of " << ref.name << " succeeded";
    EXPECT_TRUE(r.devices.empty());
    for (const auto& f : fragments) EXPECT_CONTAINS(r.error, f);
    EXPECT_FALSE(Entry(ref.uid).has_value()) << "failed claim left a checkpoint entry";
    EXPECT_FALSE(SpecExists(ref.uid)) << "failed claim left a spec";
    return r.error;
  }
  std::string PutAndExpectFails(const std::string& name, const std::vector<Result>& results,
                                const std::vector<std::string>& fragments,
                                Json configs = Json::array()) {
    const std::string uid = Uid(100 + next_++);
    claims_.Put(ClaimJson(name, uid, results, std::move(configs)));
    return ExpectFails(Ref(name, uid), fragments);
  }
  int next_ = 0;
};

TEST_F(PreparerErrorTest, ClaimNotFound) {
  ExpectFails(Ref("missing", Uid(1)),
              {"ResourceClaim default/missing not found", "deleted or never existed"});
}

TEST_F(PreparerErrorTest, ClaimCannotBeRead) {
  claims_.PutError("flaky", Unavailable("connection refused"));
  ExpectFails(Ref("flaky", Uid(1)),
              {"cannot read ResourceClaim default/flaky", "connection refused"});
}

TEST_F(PreparerErrorTest, WrongUid) {
  claims_.Put(ClaimJson("recreated", Uid(2), {Result{}}));
  ExpectFails(Ref("recreated", Uid(1)), {"ResourceClaim default/recreated has UID " + Uid(2),
                                         "kubelet asked for UID " + Uid(1), "re-created"});
}

TEST_F(PreparerErrorTest, NotAllocated) {
  claims_.Put(ClaimJson("pending", Uid(1), {Result{}}, Json::array(), /*allocated=*/false));
  ExpectFails(Ref("pending", Uid(1)), {"ResourceClaim default/pending is not allocated"});
}

TEST_F(PreparerErrorTest, ResultFromAnotherPool) {
  PutAndExpectFails("elsewhere", {Result{.device = "gpu-0", .pool = "node-b"}},
                    {"device gpu-0 is allocated from pool node-b", "this plugin serves pool node-a",
                     "another node"});
}

TEST_F(PreparerErrorTest, OnlyAnotherDriversDevices) {
  PutAndExpectFails("nics", {Result{.device = "eth0", .driver = kOtherDriver}},
                    {"has no devices of driver accel-dra.dev", "belong to: net.example.com"});
}

TEST_F(PreparerErrorTest, DeviceNotInInventory) {
  PutAndExpectFails("stale",
                    {Result{.device = "gpu-0"}, Result{.request = "b", .device = "gpu-999"}},
                    {"device gpu-999 is not published by this node"});
  EXPECT_FALSE(SpecExists(Uid(100)));
}

TEST_F(PreparerErrorTest, BadSharingStrategy) {
  PutAndExpectFails(
      "bad-strategy", {Result{}}, {"sharing.strategy", "\"Turbo\"", "TimeSlicing"},
      Json::array({OpaqueConfig("FromClaim", {}, DeviceConfigParams({{"strategy", "Turbo"}}))}));
}

TEST_F(PreparerErrorTest, UnknownConfigField) {
  PutAndExpectFails("bad-field", {Result{}}, {"sharing.colour", "unknown field"},
                    Json::array({OpaqueConfig(
                        "FromClaim", {"main"},
                        DeviceConfigParams({{"strategy", "Exclusive"}, {"colour", "red"}}))}));
}

TEST_F(PreparerErrorTest, UnknownApiVersionAndKind) {
  Json params = DeviceConfigParams(nullptr);
  params["apiVersion"] = "accel-dra.dev/v2";
  PutAndExpectFails("bad-version", {Result{}}, {"apiVersion", "accel-dra.dev/v2", "not supported"},
                    Json::array({OpaqueConfig("FromClass", {}, params)}));
  params = DeviceConfigParams(nullptr);
  params["kind"] = "GpuConfig";
  PutAndExpectFails("bad-kind", {Result{}}, {"kind", "GpuConfig", "not supported"},
                    Json::array({OpaqueConfig("FromClaim", {}, params)}));
}

TEST_F(PreparerErrorTest, MalformedClaimsAreErrorsNotExceptions) {
  Json c = ClaimJson("odd-uid", Uid(1), {Result{}});
  c["metadata"]["uid"] = 42;
  claims_.PutRaw("odd-uid", c);
  ExpectFails(Ref("odd-uid", Uid(1)), {"no metadata.uid", "kubelet asked for UID " + Uid(1)});

  c = ClaimJson("odd-results", Uid(2), {Result{}});
  c["status"]["allocation"]["devices"]["results"] = "gpu-0";
  claims_.PutRaw("odd-results", c);
  ExpectFails(Ref("odd-results", Uid(2)), {"results must be an array"});

  c = ClaimJson("odd-status", Uid(3), {Result{}});
  c["status"] = "allocated";
  claims_.PutRaw("odd-status", c);
  ExpectFails(Ref("odd-status", Uid(3)), {"is not allocated"});

  claims_.PutRaw("not-an-object", Json::array({1, 2}));
  ExpectFails(Ref("not-an-object", Uid(4)), {"has no metadata.uid"});

  // A UID that cannot name a CDI device (kubelet would never send it, but it must not throw).
  claims_.Put(ClaimJson("bad-uid", "a/b", {Result{}}));
  auto r = PrepareOne(Ref("bad-uid", "a/b"));
  EXPECT_FALSE(r.ok());
  EXPECT_CONTAINS(r.error, "ResourceClaim default/bad-uid");
}

TEST_F(PreparerErrorTest, DeviceHeldByAnotherClaim) {
  auto a = PutAndPrepare("holder", Uid(1), "gpu-0");
  claims_.Put(ClaimJson("taker", Uid(2), {Result{.device = "gpu-0"}}));
  ExpectFails(Ref("taker", Uid(2)), {"ResourceClaim default/taker",
                                     "device gpu-0 is already in use by ResourceClaim "
                                     "default/holder (uid " +
                                         Uid(1) + ")"});
  EXPECT_TRUE(Entry(a.uid).has_value());
  // Once the holder is unprepared, the device can be taken.
  EXPECT_EQ(UnprepareOne(a), "");
  EXPECT_TRUE(PrepareOne(Ref("taker", Uid(2))).ok());
}

TEST_F(PreparerErrorTest, AdminAccessMayShareADevice) {
  PutAndPrepare("holder", Uid(1), "gpu-0");
  claims_.Put(ClaimJson("admin", Uid(2), {Result{.device = "gpu-0", .admin_access = true}}));
  auto r = PrepareOne(Ref("admin", Uid(2)));
  EXPECT_TRUE(r.ok()) << r.error;
  // And the other way round: an admin holder does not block a normal claim.
  claims_.Put(ClaimJson("admin2", Uid(3), {Result{.device = "gpu-1", .admin_access = true}}));
  ASSERT_TRUE(PrepareOne(Ref("admin2", Uid(3))).ok());
  claims_.Put(ClaimJson("normal", Uid(4), {Result{.device = "gpu-1"}}));
  r = PrepareOne(Ref("normal", Uid(4)));
  EXPECT_TRUE(r.ok()) << r.error;
  // Two normal claims still conflict.
  claims_.Put(ClaimJson("normal2", Uid(5), {Result{.device = "gpu-1"}}));
  ExpectFails(Ref("normal2", Uid(5)), {"already in use by ResourceClaim default/normal"});
}

// Unpreparing an admin-access claim leaves the claim that holds the device as it was: its
// checkpoint entry, its CDI spec and its hold (another exclusive claim is still refused).
TEST_F(PreparerErrorTest, UnprepareOfAnAdminClaimLeavesTheHolderUntouched) {
  auto holder = PutAndPrepare("holder", Uid(1), "gpu-2");
  const auto entry = Entry(holder.uid);
  const std::string spec = ReadAll(dirs_->SpecPath(holder.uid));
  claims_.Put(ClaimJson("admin", Uid(2), {Result{.device = "gpu-2", .admin_access = true}}));
  auto r = PrepareOne(Ref("admin", Uid(2)));
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_TRUE(Entry(Uid(2)).has_value());
  EXPECT_TRUE(Entry(Uid(2))->devices[0].admin_access);
  EXPECT_EQ(UnprepareOne(Ref("admin", Uid(2))), "");
  EXPECT_FALSE(Entry(Uid(2)).has_value());
  EXPECT_EQ(Entry(holder.uid), entry);
  EXPECT_EQ(ReadAll(dirs_->SpecPath(holder.uid)), spec);
  claims_.Put(ClaimJson("taker", Uid(3), {Result{.device = "gpu-2"}}));
  ExpectFails(Ref("taker", Uid(3)), {"already in use by ResourceClaim default/holder"});
  // And the admin claim prepared first, then the holder: unpreparing the admin claim changes
  // nothing for the holder either.
  claims_.Put(ClaimJson("admin2", Uid(4), {Result{.device = "gpu-3", .admin_access = true}}));
  ASSERT_TRUE(PrepareOne(Ref("admin2", Uid(4))).ok());
  auto holder2 = PutAndPrepare("holder2", Uid(5), "gpu-3");
  const auto entry2 = Entry(holder2.uid);
  EXPECT_EQ(UnprepareOne(Ref("admin2", Uid(4))), "");
  EXPECT_EQ(Entry(holder2.uid), entry2);
  ExpectConsistent();
}

TEST_F(PreparerErrorTest, DistinctSharesMayShareADevice) {
  claims_.Put(ClaimJson("s1", Uid(1), {Result{.device = "gpu-0", .share_id = "share-1"}}));
  claims_.Put(ClaimJson("s2", Uid(2), {Result{.device = "gpu-0", .share_id = "share-2"}}));
  claims_.Put(ClaimJson("whole", Uid(3), {Result{.device = "gpu-0"}}));
  EXPECT_TRUE(PrepareOne(Ref("s1", Uid(1))).ok());
  EXPECT_TRUE(PrepareOne(Ref("s2", Uid(2))).ok());
  ExpectFails(Ref("whole", Uid(3)), {"already in use"});
}

TEST_F(PreparerErrorTest, CdiRootNotWritable) {
  env_.FailWritesUnder(dirs_->cdi(), EACCES);
  std::string msg = PutAndExpectFails(
      "denied", {Result{}},
      {"ResourceClaim default/denied", "writing the CDI spec",
       "CDI root " + dirs_->cdi().string() + " is not writable", "Permission denied"});
  Reopen();
  EXPECT_FALSE(Entry(Uid(100)).has_value()) << "rolled-back entry is durable";
  // Kubelet retries once the mount is fixed.
  env_.ClearFaults();
  EXPECT_TRUE(PrepareOne(Ref("denied", Uid(100))).ok());
  ExpectConsistent();
}

TEST_F(PreparerErrorTest, CdiDiskFull) {
  env_.FailWritesUnder(dirs_->cdi(), ENOSPC);
  PutAndExpectFails("full", {Result{}},
                    {"ResourceClaim default/full",
                     "no space left to write CDI spec " + dirs_->SpecPath(Uid(100)).string()});
  ExpectConsistent();
  Reopen();
  EXPECT_TRUE(checkpoint_->Snapshot().claims.empty());
  EXPECT_TRUE(CdiRootEntries().empty());
  ExpectConsistent();
}

TEST_F(PreparerErrorTest, WholeDiskFullDoesNotLeaveTheDeviceHeld) {
  env_.FailWritesUnder(dirs_->root(), ENOSPC);
  PutAndExpectFails("full", {Result{.device = "gpu-7"}},
                    {"ResourceClaim default/full", "recording the claim in the checkpoint",
                     "No space left on device"});
  env_.ClearFaults();
  // The failed claim holds nothing: another claim gets its device.
  PutAndPrepare("next", Uid(1), "gpu-7");
  ExpectConsistent();
  Reopen();
  auto s = checkpoint_->Snapshot();
  ASSERT_EQ(s.claims.size(), 1u);
  EXPECT_TRUE(s.claims.contains(Uid(1)));
  ExpectConsistent();
}

TEST_F(PreparerErrorTest, OneFailingClaimDoesNotAffectTheOthers) {
  claims_.Put(ClaimJson("good1", Uid(1), {Result{.device = "gpu-0"}}));
  claims_.Put(ClaimJson("wrong-uid", Uid(9), {Result{.device = "gpu-1"}}));
  claims_.Put(ClaimJson("stale", Uid(3), {Result{.device = "gpu-999"}}));
  claims_.Put(ClaimJson("good2", Uid(4), {Result{.device = "gpu-2"}}));
  auto out =
      preparer_->Prepare({Ref("good1", Uid(1)), Ref("missing", Uid(2)), Ref("wrong-uid", Uid(5)),
                          Ref("stale", Uid(3)), Ref("good2", Uid(4))});
  ASSERT_EQ(out.size(), 5u);
  EXPECT_TRUE(out[Uid(1)].ok()) << out[Uid(1)].error;
  EXPECT_TRUE(out[Uid(4)].ok()) << out[Uid(4)].error;
  EXPECT_EQ(out[Uid(1)].devices.at(0).device, "gpu-0");
  EXPECT_EQ(out[Uid(4)].devices.at(0).device, "gpu-2");
  EXPECT_CONTAINS(out[Uid(2)].error, "default/missing not found");
  EXPECT_CONTAINS(out[Uid(5)].error, "kubelet asked for UID " + Uid(5));
  EXPECT_CONTAINS(out[Uid(3)].error, "gpu-999 is not published");
  EXPECT_EQ(SpecUids(), (std::vector<std::string>{Uid(1), Uid(4)}));
  ExpectConsistent();
}

// ---- Recovery from constructed crash states ----------------------------------------------------

class PreparerRecoveryTest : public PreparerTestBase {
 protected:
  void WriteOrphanSpec(const std::string& uid, const std::string& device) {
    cdi::ClaimSpecDevice d;
    d.device.device = device;
    d.device.pool = kNode;
    auto spec = cdi::BuildClaimSpec(kDriver, {uid, kNamespace, "orphan"}, {d});
    ASSERT_TRUE(spec.ok()) << spec.status().ToString();
    ASSERT_TRUE(writer_->WriteClaimSpec(uid, *spec).ok());
  }
};

TEST_F(PreparerRecoveryTest, RollsBackStartedRemovesOrphansKeepsCompleted) {
  const std::string started = Uid(1), orphan = Uid(2), completed = Uid(3);
  PutAndPrepare("started", started, "gpu-0");
  PutAndPrepare("completed", completed, "gpu-1");
  // As a crash between the CDI write and the PrepareCompleted record leaves it.
  ASSERT_TRUE(checkpoint_
                  ->Update([&](checkpoint::State& s) {
                    s.claims.at(started).state = ClaimState::kPrepareStarted;
                    s.claims.at(started).prepare_completed_at.reset();
                  })
                  .ok());
  WriteOrphanSpec(orphan, "gpu-2");
  // Another vendor's spec in the same root is not ours to touch.
  std::ofstream(dirs_->cdi() / "nvidia.com-gpu.json") << "{}";
  const std::string completed_spec = ReadAll(dirs_->SpecPath(completed));
  Reopen();

  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rolled_back, 1);
  EXPECT_EQ(report->orphan_specs_removed, 1);
  EXPECT_EQ(report->completed, 1);
  EXPECT_EQ(report->specs_recreated, 0);
  EXPECT_FALSE(Entry(started).has_value());
  EXPECT_FALSE(SpecExists(started));
  EXPECT_FALSE(SpecExists(orphan));
  ASSERT_TRUE(Entry(completed).has_value());
  EXPECT_EQ(ReadAll(dirs_->SpecPath(completed)), completed_spec);
  EXPECT_TRUE(fs::exists(dirs_->cdi() / "nvidia.com-gpu.json"));
  ExpectConsistent();

  // Durable, and a second Recover() finds nothing to do.
  Reopen();
  report = preparer_->Recover();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->rolled_back + report->orphan_specs_removed + report->specs_recreated, 0);
  EXPECT_EQ(report->completed, 1);
  // The rolled-back claim's device is free; the claim itself can be prepared again.
  EXPECT_TRUE(PrepareOne(Ref("started", started)).ok());
  ExpectConsistent();
}

TEST_F(PreparerRecoveryTest, StartedClaimWithoutSpecIsRolledBack) {
  PutAndPrepare("s", Uid(1), "gpu-0");
  ASSERT_TRUE(checkpoint_
                  ->Update([&](checkpoint::State& s) {
                    s.claims.at(Uid(1)).state = ClaimState::kPrepareStarted;
                  })
                  .ok());
  fs::remove(dirs_->SpecPath(Uid(1)));
  Reopen();
  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rolled_back, 1);
  EXPECT_EQ(report->completed, 0);
  EXPECT_TRUE(checkpoint_->Snapshot().claims.empty());
  ExpectConsistent();
}

// CDI specs are written without fsync: a power loss can leave a prepared claim's spec empty or
// old. Recovery rewrites it from the checkpoint; a spec that is right is not touched.
TEST_F(PreparerRecoveryTest, RewritesADamagedSpecOfACompletedClaim) {
  const std::string damaged = Uid(1), intact = Uid(2);
  PutAndPrepare("damaged", damaged, "gpu-0");
  PutAndPrepare("intact", intact, "gpu-1");
  const std::string before = ReadAll(dirs_->SpecPath(damaged));
  const auto intact_mtime = fs::last_write_time(dirs_->SpecPath(intact));
  Close();
  std::ofstream(dirs_->SpecPath(damaged), std::ios::trunc);  // empty, as after a power loss
  Open();
  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->completed, 2);
  EXPECT_EQ(report->specs_recreated, 1);
  EXPECT_EQ(ReadAll(dirs_->SpecPath(damaged)), before);
  EXPECT_EQ(fs::last_write_time(dirs_->SpecPath(intact)), intact_mtime);
  ExpectConsistent();
}

TEST_F(PreparerRecoveryTest, RecreatesTheSpecOfACompletedClaimAfterAReboot) {
  const std::string uid = Uid(1);
  claims_.Put(ClaimJson(
      "r", uid,
      {Result{.request = "a", .device = "gpu-4"}, Result{.request = "b", .device = "gpu-5"}},
      Json::array(
          {OpaqueConfig("FromClaim", {"b"}, DeviceConfigParams({{"strategy", "TimeSlicing"}}))})));
  ASSERT_TRUE(PrepareOne(Ref("r", uid)).ok());
  const std::string before = ReadAll(dirs_->SpecPath(uid));
  Close();
  fs::remove_all(dirs_->cdi());  // /var/run/cdi is a tmpfs
  claims_.Remove("r");           // not needed: the checkpoint has everything
  Open();
  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->completed, 1);
  EXPECT_EQ(report->specs_recreated, 1);
  EXPECT_EQ(ReadAll(dirs_->SpecPath(uid)), before);
  ExpectConsistent();
}

TEST_F(PreparerRecoveryTest, EmptyNodeRecoversToNothing) {
  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rolled_back + report->orphan_specs_removed + report->completed, 0);
}

// ---- CleanupStale ------------------------------------------------------------------------------

TEST_F(PreparerTest, CleanupStaleUnpreparesClaimsThatAreGoneOrRecreated) {
  auto gone = PutAndPrepare("gone", Uid(1), "gpu-0");
  auto recreated = PutAndPrepare("recreated", Uid(2), "gpu-1");
  auto alive = PutAndPrepare("alive", Uid(3), "gpu-2");
  auto unreadable = PutAndPrepare("unreadable", Uid(4), "gpu-3");
  claims_.Remove("gone");
  claims_.Put(ClaimJson("recreated", Uid(22), {Result{.device = "gpu-1"}}));
  claims_.PutError("unreadable", Unavailable("apiserver is down"));

  EXPECT_EQ(preparer_->CleanupStale(), 2);
  EXPECT_FALSE(Entry(gone.uid).has_value());
  EXPECT_FALSE(SpecExists(gone.uid));
  EXPECT_FALSE(Entry(recreated.uid).has_value());
  EXPECT_FALSE(SpecExists(recreated.uid));
  EXPECT_TRUE(Entry(alive.uid).has_value());
  EXPECT_TRUE(SpecExists(alive.uid));
  EXPECT_TRUE(Entry(unreadable.uid).has_value());
  EXPECT_TRUE(SpecExists(unreadable.uid));
  ExpectConsistent();
  EXPECT_EQ(preparer_->CleanupStale(), 0);

  Reopen();
  auto s = checkpoint_->Snapshot();
  EXPECT_EQ(s.claims.size(), 2u);
  // The re-created claim (new UID) can now be prepared on the freed device.
  EXPECT_TRUE(PrepareOne(Ref("recreated", Uid(22))).ok());
}

}  // namespace
}  // namespace accel_dra::claims::testing

namespace accel_dra::claims::testing {
namespace {

using SharedRecoveryTest = PreparerTestBase;

// Two plugin instances share the checkpoint during a rolling update: at start, one must not undo
// what the other is doing (a PrepareStarted claim, a spec already removed by an unprepare).
TEST_F(SharedRecoveryTest, LeavesOtherInstancesWorkInFlightButRemovesUnownedSpecs) {
  shared_ = true;
  Reopen();
  auto a = PutAndPrepare("a", "uid-a", "gpu-0");
  auto b = PutAndPrepare("b", "uid-b", "gpu-1");
  ASSERT_TRUE(checkpoint_
                  ->Update([](checkpoint::State& s) {
                    s.claims.at("uid-a").state = ClaimState::kPrepareStarted;
                  })
                  .ok());
  fs::remove(dirs_->SpecPath("uid-b"));
  {
    std::ofstream orphan(dirs_->SpecPath("uid-orphan"));
    orphan << "{}";
  }

  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rolled_back, 0);
  EXPECT_EQ(report->specs_recreated, 0);
  EXPECT_EQ(report->orphan_specs_removed, 1);
  EXPECT_FALSE(SpecExists("uid-orphan"));
  ASSERT_TRUE(Entry("uid-a").has_value());
  EXPECT_EQ(Entry("uid-a")->state, ClaimState::kPrepareStarted);
  EXPECT_FALSE(SpecExists("uid-b"));

  // The sole owner (no rolling update) recovers everything.
  shared_ = false;
  Reopen();
  report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rolled_back, 1);
  EXPECT_EQ(report->specs_recreated, 1);
  EXPECT_FALSE(Entry("uid-a").has_value());
  EXPECT_TRUE(SpecExists("uid-b"));
  ExpectConsistent();
  (void)a;
  (void)b;
}

}  // namespace
}  // namespace accel_dra::claims::testing
