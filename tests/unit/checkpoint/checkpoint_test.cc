// Format, loading, corruption handling, boot ID: single-threaded behaviour of the checkpoint.

#include "accel_dra/checkpoint/checkpoint.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <functional>
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

// Format 2 as documented in checkpoint.h: a fixed header naming the CRC-32C of the payload, the
// payload (the "data" object), and a fixed trailer.
constexpr std::string_view kFormat2Header = R"({"version": 2, "checksum": ")";
constexpr size_t kHeaderSize = 47;

std::string Format2(const Json& data) {
  std::string payload = data.dump(2);
  return std::string(kFormat2Header) + Hex(Crc32c(payload)) + R"(", "data": )" + payload + "}\n";
}

// The bytes a format-2 file's checksum covers.
std::string Payload(const std::string& file) {
  return file.substr(kHeaderSize, file.size() - kHeaderSize - 2);
}

// Format 1: the checksum covers the canonical (compact, keys sorted) dump of "data".
std::string Format1(const Json& data, int indent = 2) {
  Json doc = {{"version", 1}, {"checksum", Hex(Crc32c(data.dump()))}, {"data", data}};
  return doc.dump(indent);
}

// Re-signs a checkpoint document after a test edited its data (to test field checks, not the
// checksum).
std::string Resign(const Json& doc) { return Format2(doc["data"]); }

class CheckpointTest : public CheckpointTestBase {
 protected:
  // Writes a valid checkpoint holding one completed claim "uid-1" (its first device with every
  // optional record field); returns the file's bytes.
  std::string WriteValid() {
    auto cp = MustOpen();
    EXPECT_TRUE(
        cp->Update([](State& s) {
            PreparedClaim c = MakeClaim("one", ClaimState::kPrepareCompleted, 2);
            PreparedDevice& d = c.devices[0];
            d.time_slice = model::AppliedTimeSlice{model::TimeSliceControl::kNvidiaSmi, "GPU-0", 0};
            d.device_nodes = std::vector<std::string>{"/dev/accel0"};
            d.mounts = std::vector<model::FileMount>{{"/run/v", "/run/accel-dra/driver/version"}};
            d.identity = {"0000:3b:00.0", "GPU-0"};
            s.claims["uid-1"] = c;
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
  {
    PreparedDevice& d0 = expected.claims["uid-done"].devices[0];
    d0.request_names.clear();
    d0.sharing = {model::SharingStrategy::kSpacePartitioning, model::TimeSliceInterval::kDefault,
                  16};
    d0.admin_access = true;
    // No time slice, device nodes, mounts or identity recorded (as read from format 1, or
    // format 2 before identities were recorded): stays so.
    PreparedDevice& d1 = expected.claims["uid-done"].devices[1];
    d1.share_id = "share-1";
    d1.sharing.interval = model::TimeSliceInterval::kLong;
    d1.time_slice = model::AppliedTimeSlice{model::TimeSliceControl::kNone, "", 3};
    d1.mounts = std::vector<model::FileMount>{{"/run/gr\u00fc\u00df", "/run/x"}};
    d1.device_nodes = std::vector<std::string>{};
    d1.identity = {"10000:3b:00.0", "GPU-8c5a4d3e"};
  }
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
  // The data directory Open() created is owner-only (it was 0755 before Env::CreateDirs honoured
  // its mode; issue 11).
  ASSERT_EQ(::stat(data_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  // The document's shape: the fixed header, the CRC of the payload's bytes, and JSON as a whole.
  const std::string bytes = ReadAll(file());
  ASSERT_TRUE(bytes.starts_with(kFormat2Header)) << bytes;
  ASSERT_TRUE(bytes.ends_with("}\n"));
  EXPECT_EQ(bytes.substr(kFormat2Header.size(), 8), Hex(Crc32c(Payload(bytes))));
  EXPECT_EQ(bytes.substr(kFormat2Header.size() + 8, 11), R"(", "data": )");
  Json doc = Json::parse(bytes);
  EXPECT_EQ(doc["version"], 2);
  EXPECT_EQ(doc["checksum"], Hex(Crc32c(Payload(bytes))));
  EXPECT_EQ(Json::parse(Payload(bytes)), doc["data"]);
  EXPECT_EQ(doc["data"]["bootId"], kBootA);
  EXPECT_EQ(doc["data"]["writerVersion"], "1.2.3-test");
  EXPECT_EQ(doc["data"]["claims"]["uid-done"]["state"], "PrepareCompleted");
  EXPECT_EQ(doc["data"]["claims"]["uid-done"]["prepareStartedAt"], "2025-06-15T15:06:40.123Z");
  EXPECT_EQ(doc["data"]["claims"]["uid-started"]["state"], "PrepareStarted");
  EXPECT_FALSE(doc["data"]["claims"]["uid-started"].contains("prepareCompletedAt"));
  const Json& devices = doc["data"]["claims"]["uid-done"]["devices"];
  EXPECT_EQ(devices[0], Json::parse(R"({"requestNames": [], "pool": "node-a", "device": "accel-0",
                            "cdiDeviceIds": ["k8s.accel-dra.dev/claim=done-accel-0"],
                            "sharing": {"strategy": "SpacePartitioning", "partitionCount": 16},
                            "adminAccess": true})"));
  EXPECT_EQ(devices[1],
            Json::parse(R"({"requestNames": ["req"], "pool": "node-a", "device": "accel-1",
                            "cdiDeviceIds": ["k8s.accel-dra.dev/claim=done-accel-1"],
                            "shareId": "share-1",
                            "sharing": {"strategy": "TimeSlicing", "interval": "Long"},
                            "adminAccess": false,
                            "timeSlice": {"control": "none", "setting": 3},
                            "deviceNodes": [],
                            "mounts": [{"hostPath": "/run/gr\u00fc\u00df",
                                        "containerPath": "/run/x"}],
                            "pciBusID": "10000:3b:00.0", "uuid": "GPU-8c5a4d3e"})"));
  EXPECT_EQ(doc["data"]["claims"]["uid-started"]["devices"], Json::array());

  auto cp = MustOpen();
  ASSERT_NE(cp, nullptr);
  EXPECT_EQ(cp->Snapshot(), expected);
  const LoadReport& r = cp->load_report();
  EXPECT_FALSE(r.warning.has_value());
  EXPECT_FALSE(r.rebooted);
  EXPECT_EQ(r.format_version, 2);
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
    ASSERT_TRUE(
        cp->Update(
              [](State& s) { s.claims["uid-v"] = MakeClaim("v", ClaimState::kPrepareStarted, 1); },
              Durability::kVisible)
            .ok());
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

// A time a TimePoint (nanoseconds in 64 bits) cannot hold is corruption, not an overflow (UBSan
// found the overflow; issue 11): moved aside with DataLoss. The edges of the range still load.
TEST_F(CheckpointTest, TimestampsOutsideTheRepresentableRangeAreDataLoss) {
  const Json valid = Json::parse(WriteValid());
  const std::string claim = valid["data"]["claims"].begin().key();
  for (const char* t : {"9999-12-31T23:59:59.999Z", "2262-04-12T00:00:00Z", "1677-09-21T00:00:00Z",
                        "0000-01-01T00:00:00Z", "-999-01-01T00:00:00Z"}) {
    for (const char* key : {"prepareStartedAt", "prepareCompletedAt"}) {
      SCOPED_TRACE(std::string(key) + " = " + t);
      fs::remove_all(data_);
      fs::create_directories(data_);
      Json doc = valid;
      doc["data"]["claims"][claim][key] = t;
      std::string bytes = Resign(doc);
      WriteAll(file(), bytes);
      ExpectMovedAside(bytes, Code::kDataLoss,
                       "field \"" + std::string(key) +
                           "\" is not an RFC 3339 UTC time within the "
                           "representable range");
    }
  }
  for (const char* t : {"2262-04-11T00:00:00Z", "1677-09-22T00:00:00.000Z"}) {
    SCOPED_TRACE(t);
    fs::remove_all(data_);
    fs::create_directories(data_);
    Json doc = valid;
    doc["data"]["claims"][claim]["prepareStartedAt"] = t;
    WriteAll(file(), Resign(doc));
    auto cp = MustOpen();
    ASSERT_NE(cp, nullptr);
    EXPECT_FALSE(cp->load_report().warning.has_value()) << cp->load_report().warning->ToString();
    ASSERT_TRUE(cp->Find(claim).has_value());
    ASSERT_TRUE(cp->Update([](State&) {}).ok());  // written again by FormatTime
    Json again = Json::parse(ReadAll(file()));
    EXPECT_EQ(again["data"]["claims"][claim]["prepareStartedAt"].get<std::string>().substr(0, 19),
              std::string(t).substr(0, 19));
  }
}

// Format 1's checksum is over the data's canonical form, not over the bytes in the file: any
// layout loads, unknown fields are tolerated. The next write upgrades the file to format 2.
TEST_F(CheckpointTest, Format1LoadsRegardlessOfLayoutAndUpgradesOnTheNextWrite) {
  Json data = Json::parse(ReadAll(kFixtures / "v1-0.1.0-plugin.json"))["data"];
  data["bootId"] = kBootA;
  data["futureField"] = {{"x", 1}};
  data["claims"].begin().value()["futureClaimField"] = true;
  fs::create_directories(data_);
  WriteAll(file(), Format1(data, /*indent=*/-1));  // compact
  State loaded;
  {
    auto cp = MustOpen();
    ASSERT_NE(cp, nullptr);
    EXPECT_FALSE(cp->load_report().warning.has_value());
    EXPECT_EQ(cp->load_report().format_version, 1);
    loaded = cp->Snapshot();
    EXPECT_EQ(loaded.claims.size(), 4u);
    EXPECT_FALSE(cp->dirty());
    ASSERT_TRUE(cp->Sync().ok());
    EXPECT_EQ(cp->stats().writes, 0u);  // nothing to write: still format 1 on disk
    EXPECT_FALSE(ReadAll(file()).starts_with(kFormat2Header));
    ASSERT_TRUE(cp->Update([](State&) {}).ok());
    EXPECT_TRUE(ReadAll(file()).starts_with(kFormat2Header));
  }
  auto cp = MustOpen();
  EXPECT_EQ(cp->load_report().format_version, 2);
  EXPECT_EQ(cp->Snapshot(), loaded);
}

TEST_F(CheckpointTest, CorruptJsonIsMovedAside) {
  WriteValid();
  std::string garbage = "{\"version\": 1, \"checksum\": \"00\", \"data\": {";
  WriteAll(file(), garbage);
  ExpectMovedAside(garbage, Code::kDataLoss, "not valid JSON");
}

TEST_F(CheckpointTest, ChecksumMismatchIsMovedAside) {
  std::string bytes = WriteValid();
  size_t at = bytes.find("\"one\"");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 3] = 'f';  // "onf": still valid JSON, a different claim name
  WriteAll(file(), bytes);
  ExpectMovedAside(bytes, Code::kDataLoss, "checksum mismatch");
}

// The checksum covers the exact payload bytes: one changed byte of layout is corruption too.
TEST_F(CheckpointTest, OneChangedWhitespaceByteInThePayloadIsDataLoss) {
  const std::string original = WriteValid();
  std::string bytes = original;
  size_t at = bytes.find("\n  \"bootId\"");
  ASSERT_NE(at, std::string::npos);
  ASSERT_GT(at, kHeaderSize);
  bytes[at + 1] = '\t';  // an indentation space becomes a tab: the same JSON value
  ASSERT_EQ(Json::parse(Payload(bytes)), Json::parse(Payload(original)));
  WriteAll(file(), bytes);
  ExpectMovedAside(bytes, Code::kDataLoss, "checksum mismatch");
}

// A format-2 file re-serialised by another tool (same JSON value, another layout) is unusable:
// it is verified as bytes, never re-serialised.
TEST_F(CheckpointTest, ReserialisedFormat2IsDataLoss) {
  std::string bytes = Json::parse(WriteValid()).dump(2);
  WriteAll(file(), bytes);
  ExpectMovedAside(bytes, Code::kDataLoss, "does not start with the format-2 header");
}

TEST_F(CheckpointTest, Format2HeaderAndTrailerAreExact) {
  const std::string valid = WriteValid();
  {
    std::string bytes = valid;
    for (size_t i = kFormat2Header.size(); i < kFormat2Header.size() + 8; ++i) {
      bytes[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(bytes[i])));
    }
    if (bytes == valid) bytes[kFormat2Header.size()] = 'X';  // all digits: still not hex
    WriteAll(file(), bytes);
    ExpectMovedAside(bytes, Code::kDataLoss, "the format-2 header is malformed");
  }
  fs::remove_all(data_);
  {
    std::string bytes = valid.substr(0, valid.size() - 1);  // no final newline
    fs::create_directories(data_);
    WriteAll(file(), bytes);
    ExpectMovedAside(bytes, Code::kDataLoss, "does not end with the format-2 trailer");
  }
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

// Format 2's typed members are checked strictly; each problem names where it is.
TEST_F(CheckpointTest, MalformedTypedFieldsAreMovedAside) {
  const Json valid = Json::parse(WriteValid());
  const std::string where = "data.claims[\"uid-1\"].devices[0]";
  struct Case {
    std::function<void(Json&)> edit;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {[](Json& d) { d["sharing"]["strategy"] = "Sometimes"; },
       where + ".sharing: unknown strategy \"Sometimes\""},
      {[](Json& d) { d["sharing"]["interval"] = "Sometimes"; },
       where + ".sharing: unknown interval \"Sometimes\""},
      {[](Json& d) {
         d["sharing"] = {{"strategy", "Exclusive"}, {"interval", "Long"}};
       },
       "\"interval\" must be present exactly with TimeSlicing"},
      {[](Json& d) {
         d["sharing"] = {{"strategy", "SpacePartitioning"}};
       },
       "\"partitionCount\" must be present exactly with SpacePartitioning"},
      {[](Json& d) {
         d["sharing"] = {{"strategy", "SpacePartitioning"}, {"partitionCount", 17}};
       },
       "field \"partitionCount\" is not an integer from 2 to 16"},
      {[](Json& d) { d.erase("adminAccess"); }, where + ": missing field \"adminAccess\""},
      {[](Json& d) { d["timeSlice"]["control"] = "magic"; },
       where + ".timeSlice: unknown control \"magic\""},
      {[](Json& d) { d["timeSlice"].erase("target"); },
       where + ".timeSlice: missing field \"target\""},
      {[](Json& d) { d["timeSlice"]["setting"] = 4; },
       "field \"setting\" is not an integer from 0 to 3"},
      {[](Json& d) { d["deviceNodes"] = {1}; }, "field \"deviceNodes\" is not an array of strings"},
      {[](Json& d) { d["mounts"][0].erase("hostPath"); },
       where + ".mounts[0]: missing field \"hostPath\""},
      {[](Json& d) { d["pciBusID"] = 59; }, where + ": field \"pciBusID\" is not a string"},
      {[](Json& d) { d["uuid"] = nullptr; }, where + ": field \"uuid\" is not a string"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.reason);
    fs::remove_all(data_);
    fs::create_directories(data_);
    Json doc = valid;
    c.edit(doc["data"]["claims"]["uid-1"]["devices"][0]);
    std::string bytes = Resign(doc);
    WriteAll(file(), bytes);
    ExpectMovedAside(bytes, Code::kDataLoss, c.reason);
  }
}

// Found by tests/fuzz/checkpoint_fuzz under UBSan: a year the nanosecond clock cannot hold
// overflowed (signed overflow) instead of being rejected.
TEST_F(CheckpointTest, TimestampOutsideTheClockRangeIsMovedAside) {
  const Json valid = Json::parse(WriteValid());
  ASSERT_TRUE(valid["data"]["claims"]["uid-1"].contains("prepareStartedAt"));
  for (const char* t : {"9999-12-31T23:59:59.999Z", "2262-04-12T00:00:00Z", "0001-01-01T00:00:00Z",
                        "1677-09-21T00:00:00Z"}) {
    SCOPED_TRACE(t);
    fs::remove_all(data_);
    fs::create_directories(data_);
    Json doc = valid;
    doc["data"]["claims"]["uid-1"]["prepareStartedAt"] = t;
    std::string bytes = Resign(doc);
    WriteAll(file(), bytes);
    ExpectMovedAside(bytes, Code::kDataLoss, "field \"prepareStartedAt\" is not");
  }
  fs::remove_all(data_);
  fs::create_directories(data_);
  Json doc = valid;
  doc["data"]["claims"]["uid-1"]["prepareStartedAt"] = "2261-12-31T23:59:59.999Z";
  WriteAll(file(), Resign(doc));
  auto cp = MustOpen();
  ASSERT_NE(cp, nullptr);
  EXPECT_FALSE(cp->load_report().warning.has_value());
  EXPECT_EQ(cp->Find("uid-1")->prepare_started_at, AtMs(9214646399999));
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
    // {"sharing":{"strategy":"TimeSlicing","timeSlicing":{"interval":"Long"}}}; no time slice,
    // device nodes or mounts recorded.
    d0.sharing = {model::SharingStrategy::kTimeSlicing, model::TimeSliceInterval::kLong, 0};
    PreparedDevice d1;
    d1.request_names = {"accels"};
    d1.pool = "node-a";
    d1.device = "accel-1";
    d1.cdi_device_ids = {"k8s.accel-dra.dev/claim=common",
                         "k8s.accel-dra.dev/claim=" + uid + "-accel-1-share-2f4e6a8c"};
    d1.share_id = "2f4e6a8c-1b3d-4f5a-9c7e-0d2b4f6a8c1e";
    // {"sharing":{"strategy":"SpacePartitioning","spacePartitioning":{"partitionCount":4}},
    //  "env":{"ACCEL_VISIBLE":"1"}}: "env" never had an effect and is dropped.
    d1.sharing = {model::SharingStrategy::kSpacePartitioning, model::TimeSliceInterval::kDefault,
                  4};
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

// The state of tests/fixtures/checkpoint/v1-0.1.0-plugin.json (format 1 as the plugin wrote it,
// typed settings in "config") and of v2-0.1.0.json (the same claims in format 2).
State PluginFixtureState() {
  const std::string prefix = "0b1d6c2e-5f3a-4e71-9c8d-1a2b3c4d5e0";
  const std::vector<model::FileMount> version_file = {
      {"/run/accel-sim/driver-version", "/run/accel-dra/driver/version"}};
  auto device = [&](const std::string& uid, const std::string& name, const std::string& request) {
    PreparedDevice d;
    d.request_names = {request};
    d.pool = "node-a";
    d.device = name;
    d.cdi_device_ids = {"k8s.accel-dra.dev/device=" + uid + "-" + name};
    d.device_nodes = std::vector<std::string>{"/dev/accel" + name.substr(4)};
    d.mounts = version_file;
    return d;
  };
  auto claim = [&](const std::string& name, int64_t started, std::optional<int64_t> completed) {
    PreparedClaim c;
    c.ns = "default";
    c.name = name;
    c.state = completed ? ClaimState::kPrepareCompleted : ClaimState::kPrepareStarted;
    c.prepare_started_at = AtMs(started);
    if (completed) c.prepare_completed_at = AtMs(*completed);
    return c;
  };
  State want;
  {
    const std::string uid = prefix + "1";
    PreparedClaim c = claim("timesliced", 1796296032512, 1796296032555);
    c.cdi_spec_file = "k8s.accel-dra.dev-device_" + uid + ".json";
    PreparedDevice set = device(uid, "gpu-1", "a");
    set.sharing = {model::SharingStrategy::kTimeSlicing, model::TimeSliceInterval::kLong, 0};
    set.time_slice = model::AppliedTimeSlice{model::TimeSliceControl::kNvidiaSmi,
                                             "SIM-2eb484b3-ea55-5be2-9a71-839dca9a6987", 3};
    PreparedDevice advisory = device(uid, "gpu-9", "b");
    advisory.sharing = set.sharing;
    advisory.time_slice = model::AppliedTimeSlice{model::TimeSliceControl::kNone, "", 3};
    c.devices = {set, advisory};
    want.claims[uid] = c;
  }
  {
    const std::string uid = prefix + "2";
    PreparedClaim c = claim("partitioned", 1796296032556, 1796296032557);
    c.cdi_spec_file = "k8s.accel-dra.dev-device_" + uid + ".json";
    PreparedDevice part = device(uid, "gpu-5", "main");
    part.sharing = {model::SharingStrategy::kSpacePartitioning, model::TimeSliceInterval::kDefault,
                    4};
    PreparedDevice share = device(uid, "gpu-6", "shared");
    share.share_id = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    c.devices = {part, share};
    want.claims[uid] = c;
  }
  {
    const std::string uid = prefix + "3";
    PreparedClaim c = claim("monitor", 1796296032579, 1796296032580);
    c.cdi_spec_file = "k8s.accel-dra.dev-device_" + uid + ".json";
    PreparedDevice admin = device(uid, "gpu-5", "main");
    admin.admin_access = true;
    c.devices = {admin};
    want.claims[uid] = c;
  }
  {
    const std::string uid = prefix + "4";
    PreparedClaim c = claim("interrupted", 1796296032591, std::nullopt);
    c.cdi_spec_file = "k8s.accel-dra.dev-device_" + uid + ".json";
    PreparedDevice d = device(uid, "gpu-2", "main");
    d.sharing = {model::SharingStrategy::kTimeSlicing, model::TimeSliceInterval::kShort, 0};
    d.time_slice = model::AppliedTimeSlice{model::TimeSliceControl::kNvidiaSmi,
                                           "SIM-2eb483b3-ea55-5a2f-9a71-849dca9a6b3a", 1};
    c.devices = {d};
    want.claims[uid] = c;
  }
  return want;
}

TEST_F(CheckpointFixture, V1FromThePluginLoadsIntoTypedRecords) {
  fs::create_directories(data_);
  fs::copy_file(kFixtures / "v1-0.1.0-plugin.json", file());
  auto cp = MustOpen();  // boot ID kBootA: the fixture's
  ASSERT_NE(cp, nullptr);
  const LoadReport& r = cp->load_report();
  ASSERT_FALSE(r.warning.has_value()) << r.warning->ToString();
  EXPECT_EQ(r.format_version, 1);
  EXPECT_EQ(r.previous_writer_version, "0.1.0");
  EXPECT_FALSE(r.rebooted);
  EXPECT_EQ(cp->Snapshot(), PluginFixtureState());
}

TEST_F(CheckpointFixture, V2Loads) {
  fs::create_directories(data_);
  fs::copy_file(kFixtures / "v2-0.1.0.json", file());
  auto cp = MustOpen();
  ASSERT_NE(cp, nullptr);
  const LoadReport& r = cp->load_report();
  ASSERT_FALSE(r.warning.has_value()) << r.warning->ToString();
  EXPECT_EQ(r.format_version, 2);
  EXPECT_EQ(r.previous_writer_version, "0.1.0");
  EXPECT_FALSE(r.rebooted);
  EXPECT_EQ(cp->Snapshot(), PluginFixtureState());
}

}  // namespace
}  // namespace accel_dra::checkpoint::testing
