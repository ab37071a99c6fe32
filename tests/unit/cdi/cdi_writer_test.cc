// CdiWriter: per-claim spec files on disk, through the Env seam.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include "accel_dra/cdi/cdi.h"

namespace accel_dra::cdi {
namespace {
namespace fs = std::filesystem;

// Real filesystem, with injectable failures for writes and directory creation.
class FaultEnv : public Env {
 public:
  int write_errno = 0;
  int mkdir_errno = 0;
  int writes = 0;

  Status WriteFileAtomic(const fs::path& path, std::string_view data, mode_t mode,
                         Durability durability) override {
    ++writes;
    if (write_errno != 0) {
      return ErrnoStatus(
          "create " +
              (path.parent_path() / ("." + path.filename().string() + ".tmp-1234")).string(),
          write_errno);
    }
    return Env::WriteFileAtomic(path, data, mode, durability);
  }
  Status CreateDirs(const fs::path& dir, mode_t mode) override {
    if (mkdir_errno != 0) return ErrnoStatus("create directory " + dir.string(), mkdir_errno);
    return Env::CreateDirs(dir, mode);
  }
};

class CdiWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("cdi-writer-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    root_ = dir_ / "var" / "run" / "cdi";
  }
  void TearDown() override { fs::remove_all(dir_); }

  static Spec ClaimSpec(const std::string& uid, const std::string& device = "accel-0") {
    ClaimInfo claim{uid, "default", "my-claim"};
    ClaimSpecDevice d;
    d.device.device = device;
    d.device.pool = "node-a";
    auto spec = BuildClaimSpec("accel-dra.dev", claim, {d});
    EXPECT_TRUE(spec.ok()) << spec.status().ToString();
    return spec.value();
  }

  fs::path dir_;
  fs::path root_;
  FaultEnv env_;
};

TEST_F(CdiWriterTest, WritesAtomicallyWithReadableModeAndCreatesRoot) {
  CdiWriter w(&env_, root_);
  EXPECT_FALSE(fs::exists(root_));
  Spec spec = ClaimSpec("uid-1");
  ASSERT_TRUE(w.WriteClaimSpec("uid-1", spec).ok());
  fs::path file = root_ / "k8s.accel-dra.dev-device_uid-1.json";
  EXPECT_EQ(w.ClaimSpecPath("uid-1").value(), file);
  ASSERT_TRUE(fs::exists(file));
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  // The root it created is readable by the container runtime, whatever the umask.
  ASSERT_EQ(::stat(root_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  // Only the spec file, no temp files left behind.
  EXPECT_EQ(env_.ListDir(root_).value(), std::vector<std::string>{file.filename().string()});
  EXPECT_EQ(env_.ReadFile(file).value(), ToJson(spec).value());
  auto back = ParseJson(env_.ReadFile(file).value());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
}

TEST_F(CdiWriterTest, RewriteReplacesAndIdenticalRewriteIsSkipped) {
  CdiWriter w(&env_, root_);
  ASSERT_TRUE(w.WriteClaimSpec("uid-1", ClaimSpec("uid-1", "accel-0")).ok());
  EXPECT_EQ(env_.writes, 1);
  ASSERT_TRUE(w.WriteClaimSpec("uid-1", ClaimSpec("uid-1", "accel-0")).ok());
  EXPECT_EQ(env_.writes, 1);  // same bytes: nothing written
  ASSERT_TRUE(w.WriteClaimSpec("uid-1", ClaimSpec("uid-1", "accel-1")).ok());
  EXPECT_EQ(env_.writes, 2);
  auto content = env_.ReadFile(root_ / "k8s.accel-dra.dev-device_uid-1.json").value();
  EXPECT_NE(content.find("uid-1-accel-1"), std::string::npos);
  EXPECT_EQ(env_.ListDir(root_).value().size(), 1u);
}

TEST_F(CdiWriterTest, RemoveMissingIsOkAndRemoveDeletes) {
  CdiWriter w(&env_, root_);
  EXPECT_TRUE(w.RemoveClaimSpec("never-written").ok());
  ASSERT_TRUE(w.WriteClaimSpec("uid-1", ClaimSpec("uid-1")).ok());
  EXPECT_TRUE(w.RemoveClaimSpec("uid-1").ok());
  EXPECT_TRUE(w.RemoveClaimSpec("uid-1").ok());
  EXPECT_TRUE(env_.ListDir(root_).value().empty());
  EXPECT_EQ(w.RemoveClaimSpec("a/b").code(), Code::kInvalidArgument);
}

TEST_F(CdiWriterTest, ReadClaimSpecParsesOrSaysWhy) {
  CdiWriter w(&env_, root_);
  EXPECT_EQ(w.ReadClaimSpec("uid-1").status().code(), Code::kNotFound);
  Spec spec = ClaimSpec("uid-1");
  ASSERT_TRUE(w.WriteClaimSpec("uid-1", spec).ok());
  auto back = w.ReadClaimSpec("uid-1");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(ToJson(*back).value(), ToJson(spec).value());
  const fs::path file = root_ / "k8s.accel-dra.dev-device_uid-2.json";
  ASSERT_TRUE(env_.WriteFileAtomic(file, "{not json", 0644, Durability::kDurable).ok());
  auto bad = w.ReadClaimSpec("uid-2");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(file.string()), std::string::npos)
      << bad.status().message();
}

TEST_F(CdiWriterTest, ListOnlyOurClaimSpecs) {
  CdiWriter w(&env_, root_);
  EXPECT_TRUE(w.ListClaimSpecs().value().empty());  // missing root: empty, not an error
  ASSERT_TRUE(w.WriteClaimSpec("uid-b", ClaimSpec("uid-b")).ok());
  ASSERT_TRUE(w.WriteClaimSpec("uid-a", ClaimSpec("uid-a")).ok());
  // Other vendors, other classes, other drivers, temp files, YAML, junk.
  for (const char* name :
       {"k8s.gpu.example.com-gpu_uid-c.yaml", "k8s.gpu.example.com-gpu_uid-c.json",
        "nvidia.com-gpu.json", "k8s.accel-dra.dev-other_uid-d.json",
        "k8s.accel-dra.dev2-device_uid-e.json", ".k8s.accel-dra.dev-device_uid-f.json.tmp-abc",
        "k8s.accel-dra.dev-device_uid-g.yaml", "k8s.accel-dra.dev-device_.json",
        "k8s.accel-dra.dev-device_bad uid.json"}) {
    ASSERT_TRUE(env_.WriteFileAtomic(root_ / name, "{}", 0644, Durability::kDurable).ok());
  }
  auto uids = w.ListClaimSpecs();
  ASSERT_TRUE(uids.ok()) << uids.status().ToString();
  EXPECT_EQ(*uids, (std::vector<std::string>{"uid-a", "uid-b"}));
  // Removing ours leaves the others alone.
  ASSERT_TRUE(w.RemoveClaimSpec("uid-a").ok());
  ASSERT_TRUE(w.RemoveClaimSpec("uid-b").ok());
  EXPECT_EQ(env_.ListDir(root_).value().size(), 9u);
}

TEST_F(CdiWriterTest, DiskFullIsResourceExhaustedWithClearMessage) {
  CdiWriter w(&env_, root_);
  env_.write_errno = ENOSPC;
  Status st = w.WriteClaimSpec("uid-1", ClaimSpec("uid-1"));
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.ToString();
  EXPECT_NE(st.message().find("no space left"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find((root_ / "k8s.accel-dra.dev-device_uid-1.json").string()),
            std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("free space"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(root_ / "k8s.accel-dra.dev-device_uid-1.json"));
}

TEST_F(CdiWriterTest, UnwritableRootIsPermissionDeniedNamingTheMount) {
  CdiWriter w(&env_, root_);
  env_.write_errno = EACCES;
  Status st = w.WriteClaimSpec("uid-1", ClaimSpec("uid-1"));
  EXPECT_EQ(st.code(), Code::kPermissionDenied) << st.ToString();
  EXPECT_NE(st.message().find("CDI root " + root_.string() + " is not writable"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("Permission denied"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("--cdi-root"), std::string::npos) << st.message();

  env_.write_errno = EROFS;
  st = w.WriteClaimSpec("uid-1", ClaimSpec("uid-1"));
  EXPECT_EQ(st.code(), Code::kPermissionDenied) << st.ToString();
}

TEST_F(CdiWriterTest, RootCreationFailureIsReported) {
  CdiWriter w(&env_, root_);
  env_.mkdir_errno = EACCES;
  Status st = w.WriteClaimSpec("uid-1", ClaimSpec("uid-1"));
  EXPECT_EQ(st.code(), Code::kPermissionDenied) << st.ToString();
  EXPECT_NE(st.message().find("--cdi-root"), std::string::npos) << st.message();
  EXPECT_EQ(env_.writes, 0);
}

TEST_F(CdiWriterTest, RejectsSpecsThatDoNotBelongToTheClaim) {
  CdiWriter w(&env_, root_);
  Spec spec = ClaimSpec("uid-1");
  Status st = w.WriteClaimSpec("uid-2", spec);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("must be named uid-2-<device>"), std::string::npos) << st.message();
  spec.kind = "k8s.other.dev/device";
  st = w.WriteClaimSpec("uid-1", spec);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("this driver writes kind k8s.accel-dra.dev/device"),
            std::string::npos)
      << st.message();
  EXPECT_EQ(w.WriteClaimSpec("../x", ClaimSpec("uid-1")).code(), Code::kInvalidArgument);
  EXPECT_EQ(env_.writes, 0);
}

TEST_F(CdiWriterTest, OtherDriverName) {
  CdiWriter w(&env_, root_, "gpu.example.com");
  EXPECT_EQ(w.kind(), "k8s.gpu.example.com/device");
  ClaimSpecDevice gpu;
  gpu.device.device = "gpu-0";
  auto spec = BuildClaimSpec("gpu.example.com", {"u1", "ns", "c"}, {gpu});
  ASSERT_TRUE(spec.ok());
  ASSERT_TRUE(w.WriteClaimSpec("u1", *spec).ok());
  EXPECT_TRUE(fs::exists(root_ / "k8s.gpu.example.com-device_u1.json"));
  EXPECT_EQ(w.ListClaimSpecs().value(), std::vector<std::string>{"u1"});
  EXPECT_TRUE(CdiWriter(&env_, root_).ListClaimSpecs().value().empty());
}

// The device-metadata writer and the claim-spec writer share a root without touching each
// other's files.
TEST_F(CdiWriterTest, DeviceMetadataWriterHasItsOwnKindAndFiles) {
  CdiWriter claims(&env_, root_);
  CdiWriter meta = CdiWriter::ForDeviceMetadata(&env_, root_, "accel-dra.dev");
  EXPECT_EQ(meta.kind(), "accel-dra.dev/metadata");
  ASSERT_TRUE(claims.WriteClaimSpec("uid-a", ClaimSpec("uid-a")).ok());
  auto spec = BuildMetadataSpec("accel-dra.dev", "uid-a", {{"gpu", "/h/gpu.json", "/c/gpu.json"}});
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_TRUE(meta.WriteClaimSpec("uid-a", *spec).ok());
  EXPECT_TRUE(fs::exists(root_ / "accel-dra.dev-metadata_uid-a.json"));
  EXPECT_FALSE(meta.WriteClaimSpec("uid-a", ClaimSpec("uid-a")).ok()) << "the other kind";
  EXPECT_EQ(meta.ListClaimSpecs().value(), (std::vector<std::string>{"uid-a"}));
  Spec back = meta.ReadClaimSpec("uid-a").value();
  EXPECT_EQ(back.kind, spec->kind);
  EXPECT_EQ(back.devices, spec->devices);
  ASSERT_TRUE(meta.RemoveClaimSpec("uid-a").ok());
  EXPECT_EQ(claims.ListClaimSpecs().value(), (std::vector<std::string>{"uid-a"}));
}

}  // namespace
}  // namespace accel_dra::cdi
