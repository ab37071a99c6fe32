// Format, loading, corruption handling, boot ID: single-threaded behaviour of the checkpoint.

#include "accel_dra/checkpoint/checkpoint.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <stdexcept>

#include "checkpoint_test_util.h"

namespace accel_dra::checkpoint::testing {
namespace {

const fs::path kFixtures = fs::path(ACCEL_DRA_SOURCE_DIR) / "tests/fixtures/checkpoint";

std::string Hex(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof(buf), "%08x", v);
  return buf;
}

// Re-signs a checkpoint document after a test edited its data (to test field checks, not the
// checksum).
std::string Resign(Json doc) {
  doc["checksum"] = Hex(Crc32c(doc["data"].dump()));
  return doc.dump(2);
}

class CheckpointTest : public CheckpointTestBase {
 protected:
  // Writes a valid checkpoint holding one completed claim "uid-1"; returns the file's bytes.
  std::string WriteValid() {
    auto cp = MustOpen();
    EXPECT_TRUE(cp->Update([](State& s) {
                    s.claims["uid-1"] = MakeClaim("one", ClaimState::kPrepareCompleted, 2);
                  }).ok());
    return ReadAll(file());
  }

  // Opens a checkpoint whose file is unusable; checks it was moved aside intact, the state is
  // empty and the warning says what happened and where the file went.
  void ExpectMovedAside(Env* env, const std::string& original, Code code,
                        const std::string& reason) {
    auto cp = MustOpen(env);
    ASSERT_NE(cp, nullptr);
    const LoadReport& r = cp->load_report();
    ASSERT_TRUE(r.warning.has_value());
    EXPECT_EQ(r.warning->code(), code) << r.warning->ToString();
    const std::string& msg = r.warning->message();
    EXPECT_NE(msg.find(file().string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(r.moved_aside_to.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(reason), std::string::npos) << msg;
    EXPECT_EQ(r.moved_aside_to.parent_path(), data_);
    EXPECT_EQ(r.moved_aside_to.filename().string().rfind("checkpoint.json.corrupt-", 0), 0u);
    EXPECT_TRUE(cp->Snapshot().claims.empty());
    EXPECT_FALSE(cp->dirty());
    EXPECT_FALSE(fs::exists(file()));
    EXPECT_EQ(ReadAll(r.moved_aside_to), original);
    // And the checkpoint is usable afterwards.
    ASSERT_TRUE(cp->Update([](State& s) {
                    s.claims["uid-new"] = MakeClaim("new", ClaimState::kPrepareStarted, 0);
                  }).ok());
    cp.reset();
    auto again = MustOpen(env);
    ASSERT_NE(again, nullptr);
    EXPECT_FALSE(again->load_report().warning.has_value());
    EXPECT_EQ(again->Snapshot().claims.size(), 1u);
  }
  void ExpectMovedAside(const std::string& original, Code code, const std::string& reason) {
    ExpectMovedAside(Env::Default(), original, code, reason);
  }
};

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
}

TEST_F(CheckpointTest, MissingFileIsEmptyState) {
  auto cp = MustOpen();
  ASSERT_NE(cp, nullptr);
  EXPECT_TRUE(cp->Snapshot().claims.empty());
  EXPECT_FALSE(cp->load_report().warning.has_value());
  EXPECT_FALSE(cp->load_report().rebooted);
  EXPECT_EQ(cp->load_report().format_version, 0);
  EXPECT_FALSE(cp->dirty());
  EXPECT_EQ(cp->boot_id(), kBootA);
  EXPECT_FALSE(fs::exists(file()));  // nothing is written until there is something to say
  EXPECT_TRUE(cp->Sync().ok());
  EXPECT_EQ(cp->stats().writes, 0u);
}

TEST_F(CheckpointTest, RoundTrip) {
  State expected;
  expected.claims["uid-started"] = MakeClaim("started", ClaimState::kPrepareStarted, 0);
  expected.claims["uid-done"] = MakeClaim("done", ClaimState::kPrepareCompleted, 2);
  expected.claims["uid-done"].devices[1].share_id = "share-1";
  expected.claims["uid-done"].devices[1].config = {{"unicode", "gr\u00fc\u00df"}, {"n", 1.5}};
  expected.claims["uid-done"].devices[0].request_names.clear();
  {
    OpenOptions options = LockTimeout(std::chrono::milliseconds(0));
    options.writer_version = "1.2.3-test";
    auto cp = MustOpen(Env::Default(), options);
    ASSERT_NE(cp, nullptr);
    ASSERT_TRUE(cp->Update([&](State& s) { s = expected; }).ok());
    EXPECT_FALSE(cp->dirty());
    EXPECT_EQ(cp->Snapshot(), expected);
    ASSERT_TRUE(cp->Find("uid-done").has_value());
    EXPECT_EQ(*cp->Find("uid-done"), expected.claims["uid-done"]);
    EXPECT_FALSE(cp->Find("uid-nope").has_value());
    EXPECT_EQ(cp->stats().updates, 1u);
    EXPECT_EQ(cp->stats().writes, 1u);
  }
  struct stat st {};
  ASSERT_EQ(::stat(file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // The document's shape.
  Json doc = Json::parse(ReadAll(file()));
  EXPECT_EQ(doc["version"], 1);
  EXPECT_EQ(doc["checksum"], Hex(Crc32c(doc["data"].dump())));
  EXPECT_EQ(doc["data"]["bootId"], kBootA);
  EXPECT_EQ(doc["data"]["writerVersion"], "1.2.3-test");
  EXPECT_EQ(doc["data"]["claims"]["uid-done"]["state"], "PrepareCompleted");
  EXPECT_EQ(doc["data"]["claims"]["uid-done"]["prepareStartedAt"], "2025-06-15T15:06:40.123Z");
  EXPECT_EQ(doc["data"]["claims"]["uid-started"]["state"], "PrepareStarted");
  EXPECT_FALSE(doc["data"]["claims"]["uid-started"].contains("prepareCompletedAt"));

  auto cp = MustOpen();
  ASSERT_NE(cp, nullptr);
  EXPECT_EQ(cp->Snapshot(), expected);
  const LoadReport& r = cp->load_report();
  EXPECT_FALSE(r.warning.has_value());
  EXPECT_FALSE(r.rebooted);
  EXPECT_EQ(r.format_version, 1);
  EXPECT_EQ(r.previous_boot_id, kBootA);
  EXPECT_EQ(r.previous_writer_version, "1.2.3-test");
  EXPECT_FALSE(cp->dirty());
}

// A visible update is in the file (a restarted process reads it) but stays dirty until a durable
// write; Sync() makes it durable.
TEST_F(CheckpointTest, VisibleUpdateIsInTheFileAndDirtyUntilSynced) {
  {
    auto cp = MustOpen();
    ASSERT_NE(cp, nullptr);
    ASSERT_TRUE(cp->Update([](State& s) {
                    s.claims["uid-v"] = MakeClaim("v", ClaimState::kPrepareStarted, 1);
                  }, Durability::kVisible).ok());
    EXPECT_TRUE(cp->dirty());
    EXPECT_FALSE(cp->unwritten());
    EXPECT_EQ(cp->stats().writes, 1u);
  }
  {
    auto cp = MustOpen();
    ASSERT_NE(cp, nullptr);
    ASSERT_TRUE(cp->Find("uid-v").has_value());
    ASSERT_TRUE(cp->Update([](State& s) { s.claims.erase("uid-v"); }, Durability::kVisible).ok());
    EXPECT_TRUE(cp->dirty());
    ASSERT_TRUE(cp->Sync().ok());
    EXPECT_FALSE(cp->dirty());
    EXPECT_EQ(cp->stats().writes, 2u);
  }
  auto cp = MustOpen();
  ASSERT_NE(cp, nullptr);
  EXPECT_TRUE(cp->Snapshot().claims.empty());
}

TEST_F(CheckpointTest, TimestampsKeepMillisecondsAndDropFinerParts) {
  {
    auto cp = MustOpen();
    ASSERT_TRUE(cp->Update([](State& s) {
                    PreparedClaim c = MakeClaim("t", ClaimState::kPrepareStarted, 0);
                    c.prepare_started_at = AtMs(1) + std::chrono::microseconds(999);
                    s.claims["uid-t"] = c;
                  }).ok());
  }
  auto cp = MustOpen();
  EXPECT_EQ(cp->Find("uid-t")->prepare_started_at, AtMs(1));
  Json doc = Json::parse(ReadAll(file()));
  EXPECT_EQ(doc["data"]["claims"]["uid-t"]["prepareStartedAt"], "1970-01-01T00:00:00.001Z");
}

TEST_F(CheckpointTest, FileWrittenByAnotherToolLoadsRegardlessOfLayout) {
  std::string bytes = WriteValid();
  Json doc = Json::parse(bytes);
  // Compact, with unknown fields (tolerated), re-signed: the checksum is over the data's
  // canonical form, not over the bytes in the file.
  doc["data"]["futureField"] = {{"x", 1}};
  doc["data"]["claims"]["uid-1"]["futureClaimField"] = true;
  doc["checksum"] = Hex(Crc32c(doc["data"].dump()));
  WriteAll(file(), doc.dump());
  auto cp = MustOpen();
  EXPECT_FALSE(cp->load_report().warning.has_value());
  EXPECT_EQ(cp->Snapshot().claims.size(), 1u);
}

TEST_F(CheckpointTest, CorruptJsonIsMovedAside) {
  WriteValid();
  std::string garbage = "{\"version\": 1, \"checksum\": \"00\", \"data\": {";
  WriteAll(file(), garbage);
  ExpectMovedAside(garbage, Code::kDataLoss, "not valid JSON");
}

TEST_F(CheckpointTest, ChecksumMismatchIsMovedAside) {
  Json doc = Json::parse(WriteValid());
  doc["data"]["claims"]["uid-1"]["name"] = "tampered";
  std::string tampered = doc.dump(2);
  WriteAll(file(), tampered);
  ExpectMovedAside(tampered, Code::kDataLoss, "checksum mismatch");
}

TEST_F(CheckpointTest, TruncatedFileIsMovedAside) {
  std::string bytes = WriteValid();
  std::string half = bytes.substr(0, bytes.size() / 2);
  WriteAll(file(), half);
  ExpectMovedAside(half, Code::kDataLoss, "is corrupt");
}

TEST_F(CheckpointTest, EmptyFileIsMovedAside) {
  WriteValid();
  WriteAll(file(), "");
  ExpectMovedAside("", Code::kDataLoss, "not valid JSON");
}

TEST_F(CheckpointTest, MissingFieldIsMovedAside) {
  Json doc = Json::parse(WriteValid());
  doc["data"]["claims"]["uid-1"]["devices"][1].erase("pool");
  std::string bytes = Resign(doc);
  WriteAll(file(), bytes);
  ExpectMovedAside(bytes, Code::kDataLoss,
                   "data.claims[\"uid-1\"].devices[1]: missing field \"pool\"");
}

TEST_F(CheckpointTest, WrongTypesAndUnknownStateAreMovedAside) {
  std::string valid = WriteValid();
  {
    Json doc = Json::parse(valid);
    doc["data"]["claims"]["uid-1"]["state"] = "PrepareHalfway";
    std::string bytes = Resign(doc);
    WriteAll(file(), bytes);
    ExpectMovedAside(bytes, Code::kDataLoss, "unknown state \"PrepareHalfway\"");
  }
  fs::remove_all(data_);
  {
    Json doc = Json::parse(valid);
    doc["data"]["claims"]["uid-1"]["prepareStartedAt"] = "yesterday";
    std::string bytes = Resign(doc);
    fs::create_directories(data_);
    WriteAll(file(), bytes);
    ExpectMovedAside(bytes, Code::kDataLoss, "\"prepareStartedAt\" is not an RFC 3339 UTC time");
  }
  fs::remove_all(data_);
  {
    Json doc = Json::parse(valid);
    doc["version"] = "1";
    std::string bytes = doc.dump();
    fs::create_directories(data_);
    WriteAll(file(), bytes);
    ExpectMovedAside(bytes, Code::kDataLoss, "\"version\" is not an integer");
  }
  fs::remove_all(data_);
  {
    Json doc = Json::parse(valid);
    doc["version"] = 0;
    std::string bytes = doc.dump();
    fs::create_directories(data_);
    WriteAll(file(), bytes);
    ExpectMovedAside(bytes, Code::kDataLoss, "unsupported format version 0");
  }
}

TEST_F(CheckpointTest, FutureVersionIsMovedAsideWithClearMessage) {
  fs::create_directories(data_);
  std::string bytes = ReadAll(kFixtures / "v99-future.json");
  ASSERT_FALSE(bytes.empty());
  WriteAll(file(), bytes);
  ExpectMovedAside(bytes, Code::kFailedPrecondition, "format version 99 is newer than");
  // (The message also says how far this build reads and asks about a downgrade.)
}

TEST_F(CheckpointTest, HugeVersionIsStillNewerNotCorrupt) {
  fs::create_directories(data_);
  std::string bytes = R"({"version": 18446744073709551615, "checksum": "", "data": {}})";
  WriteAll(file(), bytes);
  ExpectMovedAside(bytes, Code::kFailedPrecondition, "cannot be read by this build");
}

// A clock that stands still, to check that two bad files in the same second both survive.
class FrozenClockEnv : public Env {
 public:
  std::chrono::system_clock::time_point Now() override {
    return std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  }
};

TEST_F(CheckpointTest, MovedAsideNamesAreUnique) {
  FrozenClockEnv env;
  fs::create_directories(data_);
  WriteAll(file(), "bad one");
  {
    auto cp = MustOpen(&env);
    EXPECT_EQ(cp->load_report().moved_aside_to, data_ / "checkpoint.json.corrupt-1700000000");
  }
  WriteAll(file(), "bad two");
  auto cp = MustOpen(&env);
  EXPECT_EQ(cp->load_report().moved_aside_to, data_ / "checkpoint.json.corrupt-1700000000.1");
  EXPECT_EQ(ReadAll(data_ / "checkpoint.json.corrupt-1700000000"), "bad one");
  EXPECT_EQ(ReadAll(data_ / "checkpoint.json.corrupt-1700000000.1"), "bad two");
}

// A file that cannot be read is not "corrupt": Open fails and nothing is moved.
class UnreadableEnv : public Env {
 public:
  Expected<std::string> ReadFile(const fs::path& path) override {
    if (path.filename() == "checkpoint.json") {
      return Status(Code::kPermissionDenied, "open " + path.string() + ": Permission denied");
    }
    return Env::ReadFile(path);
  }
};

TEST_F(CheckpointTest, UnreadableFileFailsOpenAndStaysPut) {
  std::string bytes = WriteValid();
  UnreadableEnv env;
  auto r = TryOpen(&env);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kPermissionDenied);
  EXPECT_EQ(ReadAll(file()), bytes);
  // The lock was released on the error path.
  EXPECT_NE(MustOpen(), nullptr);
}

TEST_F(CheckpointTest, MissingBootIdFailsOpen) {
  fs::remove(host_ / "proc/sys/kernel/random/boot_id");
  auto r = TryOpen();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("boot ID"), std::string::npos);
  SetBootId(kBootA);
  EXPECT_NE(MustOpen(), nullptr);  // and the lock was released
}

TEST_F(CheckpointTest, RebootIsReportedAndClaimsSurvive) {
  WriteValid();
  SetBootId(kBootB);
  {
    auto cp = MustOpen();
    ASSERT_NE(cp, nullptr);
    const LoadReport& r = cp->load_report();
    EXPECT_FALSE(r.warning.has_value());
    EXPECT_TRUE(r.rebooted);
    EXPECT_EQ(r.previous_boot_id, kBootA);
    EXPECT_EQ(cp->boot_id(), kBootB);
    EXPECT_EQ(cp->Snapshot().claims.size(), 1u);
    // The new boot ID is not on disk yet: the caller re-creates device state, then Syncs.
    EXPECT_TRUE(cp->dirty());
    EXPECT_EQ(Json::parse(ReadAll(file()))["data"]["bootId"], kBootA);
    ASSERT_TRUE(cp->Sync().ok());
    EXPECT_FALSE(cp->dirty());
    EXPECT_EQ(Json::parse(ReadAll(file()))["data"]["bootId"], kBootB);
  }
  auto cp = MustOpen();
  EXPECT_FALSE(cp->load_report().rebooted);
  EXPECT_EQ(cp->Snapshot().claims.size(), 1u);
}

TEST_F(CheckpointTest, ThrowingMutationLeavesADirtyChange) {
  auto cp = MustOpen();
  EXPECT_THROW((void)cp->Update([](State& s) {
    s.claims["uid-half"] = MakeClaim("half", ClaimState::kPrepareStarted, 0);
    throw std::runtime_error("boom");
  }),
               std::runtime_error);
  EXPECT_TRUE(cp->dirty());
  ASSERT_TRUE(cp->Sync().ok());
  EXPECT_FALSE(cp->dirty());
  cp.reset();
  EXPECT_TRUE(MustOpen()->Find("uid-half").has_value());
}

// ---------------------------------------------------------------------------------------------
// Fixtures checked into the repository. tests/fixtures/checkpoint/v1-0.1.0.json was written by
// accel-dra 0.1.0 and must never be regenerated: every later build must read it exactly so.

class CheckpointFixture : public CheckpointTestBase {};

TEST_F(CheckpointFixture, V1From010Loads) {
  fs::create_directories(data_);
  fs::copy_file(kFixtures / "v1-0.1.0.json", file());
  SetBootId("3f9c2a71-5d04-4e8b-9a6f-0c1b7e2d4a58");
  auto cp = MustOpen();
  ASSERT_NE(cp, nullptr);
  const LoadReport& r = cp->load_report();
  ASSERT_FALSE(r.warning.has_value()) << r.warning->ToString();
  EXPECT_EQ(r.format_version, 1);
  EXPECT_EQ(r.previous_writer_version, "0.1.0");
  EXPECT_FALSE(r.rebooted);

  State want;
  {
    PreparedClaim& c = want.claims["a6f1c0de-2b7e-4c55-9d3a-8e4f1b2c3d41"];
    c.ns = "ml-team";
    c.name = "trainer-0-accel-claim-x7k2p";
    c.state = ClaimState::kPrepareStarted;
    c.prepare_started_at = AtMs(1748779205250);  // 2025-06-01T12:00:05.250Z
  }
  {
    const std::string uid = "5b2e9d47-81c3-4f0a-b6d2-7e3a9c1f0e86";
    PreparedClaim& c = want.claims[uid];
    c.ns = "inference";
    c.name = "llm-server-7d9f-accel-pair";
    c.state = ClaimState::kPrepareCompleted;
    c.cdi_spec_file = "k8s.accel-dra.dev-claim_" + uid + ".yaml";
    c.prepare_started_at = AtMs(1748779121120);
    c.prepare_completed_at = AtMs(1748779121387);
    PreparedDevice d0;
    d0.request_names = {"accels"};
    d0.pool = "node-a";
    d0.device = "accel-0";
    d0.cdi_device_ids = {"k8s.accel-dra.dev/claim=common",
                         "k8s.accel-dra.dev/claim=" + uid + "-accel-0"};
    d0.config =
        Json::parse(R"({"sharing":{"strategy":"TimeSlicing","timeSlicing":{"interval":"Long"}}})");
    PreparedDevice d1;
    d1.request_names = {"accels"};
    d1.pool = "node-a";
    d1.device = "accel-1";
    d1.cdi_device_ids = {"k8s.accel-dra.dev/claim=common",
                         "k8s.accel-dra.dev/claim=" + uid + "-accel-1-share-2f4e6a8c"};
    d1.share_id = "2f4e6a8c-1b3d-4f5a-9c7e-0d2b4f6a8c1e";
    d1.config = Json::parse(
        R"({"sharing":{"strategy":"SpacePartitioning","spacePartitioning":{"partitionCount":4}},)"
        R"("env":{"ACCEL_VISIBLE":"1"}})");
    c.devices = {d0, d1};
  }
  EXPECT_EQ(cp->Snapshot(), want);
}

TEST_F(CheckpointFixture, V1From010OnAnotherBootIsARebootNotCorruption) {
  fs::create_directories(data_);
  fs::copy_file(kFixtures / "v1-0.1.0.json", file());
  auto cp = MustOpen();  // boot ID kBootA differs from the fixture's
  EXPECT_FALSE(cp->load_report().warning.has_value());
  EXPECT_TRUE(cp->load_report().rebooted);
  EXPECT_EQ(cp->Snapshot().claims.size(), 2u);
}

}  // namespace
}  // namespace accel_dra::checkpoint::testing
