// Preparer with device metadata (KEP-5304, --device-metadata): the DeviceMetadata files, their
// CDI spec and IDs, removal on unprepare and on failure, recovery.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include "accel_dra/claims/device_metadata.h"
#include "claims_test_util.h"

namespace accel_dra::claims::testing {
namespace {

class PreparerMetadataTest : public PreparerTestBase {
 protected:
  void SetUp() override {
    PreparerTestBase::SetUp();
    base_opts_.device_metadata_dir = MetadataDir().string();
    base_opts_.device_metadata = true;
    Reopen();
  }
  fs::path MetadataDir() const { return dirs_->data() / "dra-device-metadata"; }
  fs::path MetadataFile(const std::string& uid, const std::string& request) const {
    return MetadataDir() / (uid + "_" + request + ".json");
  }
  fs::path MetadataSpec(const std::string& uid) const {
    return dirs_->cdi() / ("accel-dra.dev-metadata_" + uid + ".json");
  }
  static Json ReadJson(const fs::path& p) { return Json::parse(ReadAll(p)); }
  static int ValidateCdi(const fs::path& p) {
    std::string cmd = "python3 " ACCEL_DRA_SOURCE_DIR "/cdi/validate.py '" + p.string() + "'";
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  // Names of the metadata files and specs of any claim.
  std::vector<std::string> MetadataLeft() const {
    std::vector<std::string> out;
    if (fs::exists(MetadataDir())) {
      for (const auto& e : fs::directory_iterator(MetadataDir())) {
        out.push_back(e.path().filename().string());
      }
    }
    for (const auto& e : CdiRootEntries()) {
      if (e.find("metadata") != std::string::npos) out.push_back(e);
    }
    return out;
  }
};

TEST_F(PreparerMetadataTest, FilesSpecAndIdsPerRequest) {
  const std::string uid = Uid(1);
  claims_.Put(ClaimJson(
      "c1", uid,
      {Result{.request = "gpus", .device = "gpu-0"}, Result{.request = "gpus", .device = "gpu-1"},
       Result{.request = "solo/fast", .device = "gpu-2"}}));
  auto r = PrepareOne(Ref("c1", uid));
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_EQ(r.devices.size(), 3u);
  // The first device of each request carries the request's metadata CDI ID, after its own.
  EXPECT_EQ(r.devices[0].cdi_device_ids,
            (std::vector<std::string>{"k8s.accel-dra.dev/device=" + uid + "-gpu-0",
                                      "accel-dra.dev/metadata=" + uid + "_gpus"}));
  EXPECT_EQ(r.devices[1].cdi_device_ids.size(), 1u);
  EXPECT_EQ(r.devices[2].cdi_device_ids,
            (std::vector<std::string>{"k8s.accel-dra.dev/device=" + uid + "-gpu-2",
                                      "accel-dra.dev/metadata=" + uid + "_solo"}));
  // Recorded with the claim: an idempotent prepare answers the same.
  EXPECT_EQ(Entry(uid)->devices[0].cdi_device_ids, r.devices[0].cdi_device_ids);
  EXPECT_EQ(PrepareOne(Ref("c1", uid)).devices[0].cdi_device_ids, r.devices[0].cdi_device_ids);

  Json gpus = ReadJson(MetadataFile(uid, "gpus"));
  EXPECT_EQ(gpus["apiVersion"], "metadata.resource.k8s.io/v1beta1");
  EXPECT_EQ(gpus["kind"], "DeviceMetadata");
  EXPECT_EQ(gpus["metadata"],
            (Json{{"name", "c1"}, {"namespace", kNamespace}, {"uid", uid}, {"generation", 1}}));
  EXPECT_FALSE(gpus.contains("podClaimName"));
  ASSERT_EQ(gpus["requests"].size(), 1u);
  EXPECT_EQ(gpus["requests"][0]["name"], "gpus");
  const Json& devs = gpus["requests"][0]["devices"];
  ASSERT_EQ(devs.size(), 2u);
  EXPECT_EQ(devs[0]["driver"], kDriver);
  EXPECT_EQ(devs[0]["pool"], kNode);
  EXPECT_EQ(devs[0]["name"], "gpu-0");
  EXPECT_EQ(devs[1]["name"], "gpu-1");
  // The attributes as published, in the ResourceSlice form.
  const model::Device* published = inventory_->Find("gpu-0");
  ASSERT_NE(published, nullptr);
  ASSERT_FALSE(published->attributes.empty());
  for (const auto& [name, value] : published->attributes) {
    EXPECT_EQ(devs[0]["attributes"][name], value.ToJson()) << name;
  }
  // The subrequest stays in the file; the file and CDI device use the base name.
  EXPECT_EQ(ReadJson(MetadataFile(uid, "solo"))["requests"][0]["name"], "solo/fast");
  EXPECT_EQ(fs::status(MetadataFile(uid, "gpus")).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);

  auto spec = cdi::ParseJson(ReadAll(MetadataSpec(uid)));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->kind, "accel-dra.dev/metadata");
  ASSERT_EQ(spec->devices.size(), 2u);
  EXPECT_EQ(spec->devices[0].name, uid + "_gpus");
  ASSERT_EQ(spec->devices[0].container_edits.mounts.size(), 1u);
  const cdi::Mount& m = spec->devices[0].container_edits.mounts[0];
  EXPECT_EQ(m.host_path, MetadataFile(uid, "gpus").string());
  EXPECT_EQ(m.container_path,
            "/var/run/kubernetes.io/dra-device-attributes/resourceclaims/c1/gpus/"
            "accel-dra.dev-metadata.json");
  EXPECT_EQ(m.options, (std::vector<std::string>{"ro", "nosuid", "nodev", "bind"}));
  EXPECT_EQ(spec->devices[1].name, uid + "_solo");
  EXPECT_EQ(ValidateCdi(MetadataSpec(uid)), 0) << ReadAll(MetadataSpec(uid));
}

TEST_F(PreparerMetadataTest, ClaimFromTemplateUsesThePodClaimName) {
  const std::string uid = Uid(2);
  Json claim = ClaimJson("pod-x-gpu-7k2lp", uid, {Result{.request = "gpu", .device = "gpu-3"}});
  claim["metadata"]["annotations"] = {{"resource.kubernetes.io/pod-claim-name", "gpu"}};
  claims_.Put(claim);
  auto r = PrepareOne(Ref("pod-x-gpu-7k2lp", uid));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(ReadJson(MetadataFile(uid, "gpu"))["podClaimName"], "gpu");
  auto spec = cdi::ParseJson(ReadAll(MetadataSpec(uid)));
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->devices.at(0).container_edits.mounts.at(0).container_path,
            "/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/gpu/gpu/"
            "accel-dra.dev-metadata.json");
}

TEST_F(PreparerMetadataTest, UnprepareRemovesEverything) {
  auto ref = PutAndPrepare("c3", Uid(3), "gpu-4");
  ASSERT_TRUE(fs::exists(MetadataSpec(Uid(3))));
  ASSERT_TRUE(fs::exists(MetadataFile(Uid(3), "main")));
  EXPECT_EQ(UnprepareOne(ref), "");
  EXPECT_TRUE(MetadataLeft().empty());
  EXPECT_FALSE(SpecExists(Uid(3)));
}

TEST_F(PreparerMetadataTest, OffWritesNothingButStillCleansUp) {
  auto ref = PutAndPrepare("c4", Uid(4), "gpu-5");
  base_opts_.device_metadata = false;
  Reopen();
  auto r = PrepareOne(PutAndPrepare("c5", Uid(5), "gpu-6"));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.devices[0].cdi_device_ids.size(), 1u);
  EXPECT_FALSE(fs::exists(MetadataSpec(Uid(5))));
  EXPECT_EQ(UnprepareOne(ref), "");  // prepared with the feature on
  EXPECT_TRUE(MetadataLeft().empty());
}

TEST_F(PreparerMetadataTest, FailureToWriteLeavesNothing) {
  fs::create_directories(MetadataDir().parent_path());
  std::ofstream(MetadataDir()) << "not a directory";
  claims_.Put(ClaimJson("c6", Uid(6), {Result{.device = "gpu-7"}}));
  auto r = PrepareOne(Ref("c6", Uid(6)));
  EXPECT_FALSE(r.ok());
  EXPECT_CONTAINS(r.error, "device metadata");
  EXPECT_FALSE(Entry(Uid(6)).has_value());
  EXPECT_FALSE(SpecExists(Uid(6)));
  EXPECT_FALSE(fs::exists(MetadataSpec(Uid(6))));
}

TEST_F(PreparerMetadataTest, RecoveryRemovesUnownedAndRestoresMissingSpecs) {
  auto kept = PutAndPrepare("c7", Uid(7), "gpu-8");
  auto gone = PutAndPrepare("c8", Uid(8), "gpu-9");
  const std::string spec_before = ReadAll(MetadataSpec(Uid(7)));
  // A crash left the files of a claim the checkpoint does not hold; a reboot emptied the CDI root.
  ASSERT_TRUE(checkpoint_->Update([&](checkpoint::State& s) { s.claims.erase(Uid(8)); }).ok());
  fs::remove(MetadataSpec(Uid(7)));
  fs::remove(dirs_->SpecPath(Uid(7)));
  Reopen();
  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(ReadAll(MetadataSpec(Uid(7))), spec_before);
  EXPECT_TRUE(fs::exists(MetadataFile(Uid(7), "main")));
  EXPECT_FALSE(fs::exists(MetadataSpec(Uid(8))));
  EXPECT_FALSE(fs::exists(MetadataFile(Uid(8), "main")));
  ExpectConsistent();
  (void)kept;
  (void)gone;
}

TEST_F(PreparerMetadataTest, RollbackOfAnInterruptedPrepareRemovesIt) {
  auto ref = PutAndPrepare("c9", Uid(9), "gpu-10");
  ASSERT_TRUE(checkpoint_
                  ->Update([&](checkpoint::State& s) {
                    s.claims[Uid(9)].state = model::ClaimState::kPrepareStarted;
                  })
                  .ok());
  Reopen();
  auto report = preparer_->Recover();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rolled_back, 1);
  EXPECT_TRUE(MetadataLeft().empty());
  (void)ref;
}

TEST(DeviceMetadataPath, ClaimAndTemplatePaths) {
  EXPECT_EQ(DeviceMetadataContainerPath("accel-dra.dev", "shared", "", "gpu"),
            "/var/run/kubernetes.io/dra-device-attributes/resourceclaims/shared/gpu/"
            "accel-dra.dev-metadata.json");
  EXPECT_EQ(DeviceMetadataContainerPath("accel-dra.dev", "pod-gpu-abcde", "gpu", "req"),
            "/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/gpu/req/"
            "accel-dra.dev-metadata.json");
}

}  // namespace
}  // namespace accel_dra::claims::testing
