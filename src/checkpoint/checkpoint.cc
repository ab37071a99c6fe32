#include "accel_dra/checkpoint/checkpoint.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <utility>

#include "accel_dra/build_info.h"
#include "accel_dra/common/fault.h"
#include "accel_dra/common/strings.h"

namespace accel_dra::checkpoint {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kBootIdPath = "/proc/sys/kernel/random/boot_id";
constexpr mode_t kFileMode = 0600;
constexpr std::chrono::milliseconds kLockPollInterval{100};
// Shared-mode operations poll faster: another process holds the lock for one write at a time.
constexpr std::chrono::milliseconds kTxnPollInterval{10};

// ---------------------------------------------------------------------------------------------
// Small helpers.

std::string Hex32(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof(buf), "%08" PRIx32, v);
  return buf;
}

// RFC 3339 in UTC with milliseconds: 2025-06-01T12:34:56.789Z.
std::string FormatTime(TimePoint tp) {
  using namespace std::chrono;
  auto ms = floor<milliseconds>(tp);
  auto day = floor<days>(ms);
  year_month_day ymd{day};
  hh_mm_ss hms{ms - day};
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()),
                static_cast<int>(hms.subseconds().count()));
  return buf;
}

// Accepts what FormatTime writes, with 0 to 9 fractional digits (kept to milliseconds).
std::optional<TimePoint> ParseTime(const std::string& s) {
  using namespace std::chrono;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &consumed) !=
          6 ||
      consumed != 19) {
    return std::nullopt;
  }
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59) return std::nullopt;
  std::string_view rest = std::string_view(s).substr(19);
  int64_t millis = 0;
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    int digits = 0;
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      if (digits < 3) millis = millis * 10 + (rest.front() - '0');
      ++digits;
      rest.remove_prefix(1);
    }
    if (digits == 0 || digits > 9) return std::nullopt;
    for (int i = digits; i < 3; ++i) millis *= 10;
  }
  if (rest != "Z") return std::nullopt;
  return TimePoint(sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} + milliseconds{millis});
}

// The exact bytes the checksum covers: compact, keys sorted (nlohmann::json's default object
// type is a std::map), invalid UTF-8 replaced rather than thrown on.
std::string Canonical(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string ChecksumOf(const Json& data) { return Hex32(Crc32c(Canonical(data))); }

// ---------------------------------------------------------------------------------------------
// Format 1.
//
// {
//   "version": 1,
//   "checksum": "<crc32c of Canonical(data), 8 lowercase hex digits>",
//   "data": {
//     "bootId": "<boot_id of the writer's boot>",
//     "writerVersion": "0.1.0",
//     "claims": {
//       "<claim uid>": {
//         "namespace": "...", "name": "...",
//         "state": "PrepareStarted" | "PrepareCompleted",
//         "cdiSpecFile": "<file name, may be empty>",
//         "prepareStartedAt": "<RFC 3339>",
//         "prepareCompletedAt": "<RFC 3339>",            (optional)
//         "devices": [{
//           "requestNames": ["..."], "pool": "...", "device": "...",
//           "cdiDeviceIds": ["vendor/class=name"],
//           "shareId": "...",                               (optional)
//           "config": <any JSON, normally an object>
//         }]
//       }
//     }
//   }
// }
// Unknown fields are ignored on load.

Json DeviceToJson(const PreparedDevice& d) {
  Json j = Json::object();
  j["requestNames"] = d.request_names;
  j["pool"] = d.pool;
  j["device"] = d.device;
  j["cdiDeviceIds"] = d.cdi_device_ids;
  if (d.share_id) j["shareId"] = *d.share_id;
  j["config"] = d.config;
  return j;
}

Json ClaimToJson(const PreparedClaim& c) {
  Json j = Json::object();
  j["namespace"] = c.ns;
  j["name"] = c.name;
  j["state"] = std::string(ClaimStateName(c.state));
  j["cdiSpecFile"] = c.cdi_spec_file;
  j["prepareStartedAt"] = FormatTime(c.prepare_started_at);
  if (c.prepare_completed_at) j["prepareCompletedAt"] = FormatTime(*c.prepare_completed_at);
  Json devices = Json::array();
  for (const auto& d : c.devices) devices.push_back(DeviceToJson(d));
  j["devices"] = std::move(devices);
  return j;
}

Json DataToJson(const State& state, const std::string& boot_id, const std::string& writer_version) {
  Json claims = Json::object();
  for (const auto& [uid, claim] : state.claims) claims[uid] = ClaimToJson(claim);
  Json data = Json::object();
  data["bootId"] = boot_id;
  data["writerVersion"] = writer_version;
  data["claims"] = std::move(claims);
  return data;
}

std::string EncodeFormat1(const Json& data) {
  Json doc = Json::object();
  doc["version"] = 1;
  doc["checksum"] = ChecksumOf(data);
  doc["data"] = data;
  // Indented for the operator reading it; the checksum does not depend on layout.
  return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

// What a loader produces.
struct Decoded {
  State state;
  std::string boot_id;
  std::string writer_version;
};

// Field readers: a missing field or a wrong type is corruption, reported with its location.
Status Missing(const std::string& where, std::string_view key) {
  return DataLoss(where + ": missing field \"" + std::string(key) + "\"");
}
Status WrongType(const std::string& where, std::string_view key, std::string_view want) {
  return DataLoss(where + ": field \"" + std::string(key) + "\" is not " + std::string(want));
}

Status GetField(const Json& obj, std::string_view key, const std::string& where, const Json** out) {
  auto it = obj.find(key);
  if (it == obj.end()) return Missing(where, key);
  *out = &*it;
  return Status::Ok();
}

Status GetString(const Json& obj, std::string_view key, const std::string& where,
                 std::string* out) {
  const Json* v = nullptr;
  RETURN_IF_ERROR(GetField(obj, key, where, &v));
  if (!v->is_string()) return WrongType(where, key, "a string");
  *out = v->get<std::string>();
  return Status::Ok();
}

Status GetStringList(const Json& obj, std::string_view key, const std::string& where,
                     std::vector<std::string>* out) {
  const Json* v = nullptr;
  RETURN_IF_ERROR(GetField(obj, key, where, &v));
  if (!v->is_array()) return WrongType(where, key, "an array of strings");
  out->clear();
  for (const auto& e : *v) {
    if (!e.is_string()) return WrongType(where, key, "an array of strings");
    out->push_back(e.get<std::string>());
  }
  return Status::Ok();
}

Status GetTime(const Json& obj, std::string_view key, const std::string& where, TimePoint* out) {
  std::string s;
  RETURN_IF_ERROR(GetString(obj, key, where, &s));
  auto tp = ParseTime(s);
  if (!tp) return WrongType(where, key, "an RFC 3339 UTC time");
  *out = *tp;
  return Status::Ok();
}

Status DecodeDevice(const Json& j, const std::string& where, PreparedDevice* d) {
  if (!j.is_object()) return DataLoss(where + ": not an object");
  RETURN_IF_ERROR(GetStringList(j, "requestNames", where, &d->request_names));
  RETURN_IF_ERROR(GetString(j, "pool", where, &d->pool));
  RETURN_IF_ERROR(GetString(j, "device", where, &d->device));
  RETURN_IF_ERROR(GetStringList(j, "cdiDeviceIds", where, &d->cdi_device_ids));
  if (j.contains("shareId")) {
    std::string share;
    RETURN_IF_ERROR(GetString(j, "shareId", where, &share));
    d->share_id = std::move(share);
  }
  const Json* config = nullptr;
  RETURN_IF_ERROR(GetField(j, "config", where, &config));
  d->config = *config;
  return Status::Ok();
}

Status DecodeClaim(const Json& j, const std::string& where, PreparedClaim* c) {
  if (!j.is_object()) return DataLoss(where + ": not an object");
  RETURN_IF_ERROR(GetString(j, "namespace", where, &c->ns));
  RETURN_IF_ERROR(GetString(j, "name", where, &c->name));
  std::string state;
  RETURN_IF_ERROR(GetString(j, "state", where, &state));
  if (state == ClaimStateName(ClaimState::kPrepareStarted)) {
    c->state = ClaimState::kPrepareStarted;
  } else if (state == ClaimStateName(ClaimState::kPrepareCompleted)) {
    c->state = ClaimState::kPrepareCompleted;
  } else {
    return DataLoss(where + ": unknown state \"" + state + "\"");
  }
  RETURN_IF_ERROR(GetString(j, "cdiSpecFile", where, &c->cdi_spec_file));
  RETURN_IF_ERROR(GetTime(j, "prepareStartedAt", where, &c->prepare_started_at));
  if (j.contains("prepareCompletedAt")) {
    TimePoint done;
    RETURN_IF_ERROR(GetTime(j, "prepareCompletedAt", where, &done));
    c->prepare_completed_at = done;
  }
  const Json* devices = nullptr;
  RETURN_IF_ERROR(GetField(j, "devices", where, &devices));
  if (!devices->is_array()) return WrongType(where, "devices", "an array");
  for (size_t i = 0; i < devices->size(); ++i) {
    PreparedDevice d;
    RETURN_IF_ERROR(DecodeDevice((*devices)[i], where + ".devices[" + std::to_string(i) + "]", &d));
    c->devices.push_back(std::move(d));
  }
  return Status::Ok();
}

Expected<Decoded> LoadFormat1(const Json& doc) {
  std::string checksum;
  RETURN_IF_ERROR(GetString(doc, "checksum", "top level", &checksum));
  const Json* data = nullptr;
  RETURN_IF_ERROR(GetField(doc, "data", "top level", &data));
  if (!data->is_object()) return WrongType("top level", "data", "an object");
  std::string actual = ChecksumOf(*data);
  if (checksum != actual) {
    return DataLoss("checksum mismatch (file says " + checksum + ", data hashes to " + actual +
                    ")");
  }
  Decoded out;
  RETURN_IF_ERROR(GetString(*data, "bootId", "data", &out.boot_id));
  RETURN_IF_ERROR(GetString(*data, "writerVersion", "data", &out.writer_version));
  const Json* claims = nullptr;
  RETURN_IF_ERROR(GetField(*data, "claims", "data", &claims));
  if (!claims->is_object()) return WrongType("data", "claims", "an object");
  for (const auto& [uid, claim] : claims->items()) {
    PreparedClaim c;
    RETURN_IF_ERROR(DecodeClaim(claim, "data.claims[\"" + uid + "\"]", &c));
    out.state.claims.emplace(uid, std::move(c));
  }
  return out;
}

// Loaders by format version. A new format adds a row here (and a fixture); old rows stay forever.
struct FormatLoader {
  int version;
  Expected<Decoded> (*load)(const Json& doc);
};
constexpr FormatLoader kLoaders[] = {
    {1, &LoadFormat1},
};
static_assert(kLoaders[std::size(kLoaders) - 1].version == kCurrentFormatVersion);

// Parses a checkpoint file. DataLoss when unusable; FailedPrecondition when the format is newer
// than this build reads.
Expected<Decoded> Decode(const std::string& content, int* version_out) {
  Json doc;
  try {
    doc = Json::parse(content);
  } catch (const Json::exception& e) {
    return DataLoss(std::string("not valid JSON (") + e.what() + ")");
  }
  if (!doc.is_object()) return DataLoss("the top level is not a JSON object");
  const Json* version = nullptr;
  RETURN_IF_ERROR(GetField(doc, "version", "top level", &version));
  if (!version->is_number_integer()) return WrongType("top level", "version", "an integer");
  // Positive integers parse as unsigned; clamp so a huge one still reads as "newer".
  int64_t v = version->is_number_unsigned()
                  ? static_cast<int64_t>(std::min<uint64_t>(version->get<uint64_t>(), INT64_MAX))
                  : version->get<int64_t>();
  if (v > kCurrentFormatVersion) {
    return FailedPrecondition("format version " + std::to_string(v) +
                              " is newer than this build of accel-dra (" + build_info::kVersion +
                              ") reads (up to " + std::to_string(kCurrentFormatVersion) +
                              "); was the plugin downgraded?");
  }
  for (const auto& loader : kLoaders) {
    if (loader.version == v) {
      *version_out = loader.version;
      try {
        return loader.load(doc);
      } catch (const std::exception& e) {  // a gap in the field checks; still just corruption
        return DataLoss(std::string("malformed: ") + e.what());
      }
    }
  }
  return DataLoss("unsupported format version " + std::to_string(v));
}

struct LoadResult {
  State state;
  LoadReport report;
};

// Loads `file` (the caller holds the lock). Unusable files are moved aside; see the header.
Expected<LoadResult> LoadFile(Env* env, const fs::path& file, const std::string& boot_id) {
  LoadResult result;
  auto content = env->ReadFile(file);
  if (!content.ok()) {
    if (content.status().code() == Code::kNotFound) return result;
    return content.status().WithContext("read checkpoint");
  }
  int version = 0;
  auto decoded = Decode(*content, &version);
  if (decoded.ok()) {
    result.report.format_version = version;
    result.report.previous_boot_id = decoded->boot_id;
    result.report.previous_writer_version = decoded->writer_version;
    result.report.rebooted = decoded->boot_id != boot_id;
    result.state = std::move(decoded->state);
    return result;
  }

  // Unusable: move it aside so an operator can inspect it, and start empty (no crash loop).
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(env->Now().time_since_epoch());
  fs::path base = file;
  base += ".corrupt-" + std::to_string(secs.count());
  fs::path target = base;
  for (int i = 1; env->Exists(target); ++i) {
    target = base;
    target += "." + std::to_string(i);
  }
  Status moved = env->Rename(file, target);
  if (!moved.ok()) {
    return moved.WithContext("checkpoint " + file.string() + " is unusable (" +
                             decoded.status().message() + ") and could not be moved aside");
  }
  const Status& why = decoded.status();
  std::string what =
      why.code() == Code::kFailedPrecondition ? "cannot be read by this build" : "is corrupt";
  result.report.warning = Status(
      why.code(), "checkpoint " + file.string() + " " + what + ": " + why.message() +
                      "; moved it aside to " + target.string() +
                      " and started with no prepared claims. The claims recorded in it are "
                      "forgotten: their CDI specs are removed at start as unowned, and kubelet's "
                      "next prepare of those claims re-creates them; inspect the moved-aside "
                      "file");
  result.report.moved_aside_to = target;
  return result;
}

// ---------------------------------------------------------------------------------------------
// The lock file. flock needs a real file descriptor, so this is the one piece of file I/O that
// does not go through Env. The descriptor is O_CLOEXEC: exec'd helpers do not inherit the lock.

std::string ReadHolderPid(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return "";
  std::string_view text(buf, static_cast<size_t>(n));
  std::string pid = Trim(text.substr(0, text.find('\n')));
  if (pid.empty() ||
      !std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return "";
  }
  return pid;
}

// Opens the lock file and flocks it (`how` = LOCK_EX or LOCK_SH), polling with a backoff from
// 1 ms up to `max_poll` until `timeout`. An exclusive holder records its pid in the file.
Expected<int> AcquireLock(Env* env, const fs::path& path, std::chrono::milliseconds timeout,
                          int how = LOCK_EX,
                          std::chrono::milliseconds max_poll = kLockPollInterval) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kFileMode);
  if (fd < 0) return ErrnoStatus("open lock file " + path.string(), errno);
  const auto deadline = env->MonotonicNow() + timeout;
  std::chrono::milliseconds poll{1};
  for (;;) {
    if (::flock(fd, how | LOCK_NB) == 0) break;
    int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK) {
      ::close(fd);
      return ErrnoStatus("lock " + path.string(), err);
    }
    auto now = env->MonotonicNow();
    if (now >= deadline) {
      std::string holder = ReadHolderPid(fd);
      ::close(fd);
      return FailedPrecondition("another accel-dra plugin process (pid " + holder + "?) holds " +
                                path.string() + "; is a second plugin running on this node?");
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(poll, deadline - now));
    poll = std::min(poll * 2, max_poll);
  }
  if (how != LOCK_EX) return fd;
  // Record who holds it (diagnostics only; a failure here is harmless).
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] ssize_t n = ::pwrite(fd, pid.data(), pid.size(), 0);
  }
  return fd;
}

}  // namespace

std::string_view ClaimStateName(ClaimState state) {
  switch (state) {
    case ClaimState::kPrepareStarted:
      return "PrepareStarted";
    case ClaimState::kPrepareCompleted:
      return "PrepareCompleted";
  }
  return "Unknown";
}

Expected<std::unique_ptr<Checkpoint>> Checkpoint::Open(Env* env, const fs::path& data_dir,
                                                       const HostRoot& host_root,
                                                       OpenOptions options) {
  if (env == nullptr) return InvalidArgument("checkpoint: env is null");
  RETURN_IF_ERROR(env->CreateDirs(data_dir, 0700).WithContext("checkpoint data directory"));

  auto fd = AcquireLock(env, data_dir / kLockFileName, options.lock_timeout);
  if (!fd.ok()) return fd.status();
  // From here on `lock_fd` must be closed on every error path.
  const int lock_fd = *fd;
  auto fail = [lock_fd](Status st) {
    ::close(lock_fd);
    return st;
  };

  fs::path boot_id_path = host_root.Path(kBootIdPath);
  auto boot_raw = env->ReadFile(boot_id_path);
  if (!boot_raw.ok()) {
    return fail(
        FailedPrecondition("checkpoint: cannot read the boot ID: " + boot_raw.status().message()));
  }
  std::string boot_id = Trim(*boot_raw);
  if (boot_id.empty()) {
    return fail(
        FailedPrecondition("checkpoint: boot ID file " + boot_id_path.string() + " is empty"));
  }

  std::string writer_version =
      options.writer_version.empty() ? std::string(build_info::kVersion) : options.writer_version;
  const bool shared = options.shared;
  std::unique_ptr<Checkpoint> cp(new Checkpoint(env, data_dir, shared ? -1 : lock_fd,
                                                std::move(boot_id), std::move(writer_version),
                                                options));
  // From here on the destructor closes the lock in exclusive mode; in shared mode this guard
  // releases it when Open returns.
  struct SharedRelease {
    int fd;
    ~SharedRelease() {
      if (fd >= 0) ::close(fd);
    }
  } shared_release{shared ? lock_fd : -1};

  // Temp files of writes a crash interrupted (Env::WriteFileAtomic names them ".<name>.tmp-*").
  // We hold the lock, so nobody else is writing one.
  const std::string temp_prefix = "." + std::string(kCheckpointFileName) + ".tmp-";
  auto names = env->ListDir(data_dir);
  if (names.ok()) {
    for (const auto& name : *names) {
      if (name.rfind(temp_prefix, 0) == 0 && env->RemoveFile(data_dir / name).ok()) {
        ++cp->report_.removed_temp_files;
      }
    }
  }

  auto loaded = LoadFile(env, cp->file_, cp->boot_id_);
  if (!loaded.ok()) return loaded.status();
  int removed = cp->report_.removed_temp_files;
  cp->report_ = std::move(loaded->report);
  cp->report_.removed_temp_files = removed;
  cp->state_ = std::move(loaded->state);
  if (shared) {
    // Still under the lock: what we loaded is what is on disk now.
    std::lock_guard lock(cp->mu_);
    cp->disk_boot_id_ = cp->report_.previous_boot_id;
    RETURN_IF_ERROR(cp->RememberFileLocked());
  } else if (cp->report_.rebooted) {
    // The new boot ID is a change the disk lacks; Sync() (or any Update) records it.
    cp->applied_seq_ = 1;
  }
  return cp;
}

Checkpoint::Checkpoint(Env* env, fs::path dir, int lock_fd, std::string boot_id,
                       std::string writer_version, const OpenOptions& options)
    : env_(env),
      dir_(std::move(dir)),
      file_(dir_ / kCheckpointFileName),
      lock_path_(dir_ / kLockFileName),
      lock_fd_(lock_fd),
      boot_id_(std::move(boot_id)),
      writer_version_(std::move(writer_version)),
      shared_(options.shared),
      lock_timeout_(options.lock_timeout) {}

Checkpoint::~Checkpoint() {
  // Closing the descriptor releases the flock (unless a fork()ed child still shares it).
  if (lock_fd_ >= 0) ::close(lock_fd_);
  if (stamp_fd_ >= 0) ::close(stamp_fd_);
}

Status Checkpoint::Update(std::function<void(State&)> mutate, Durability durability) {
  if (shared_) return EnqueueShared(&mutate);
  std::unique_lock lock(mu_);
  ++stats_.updates;
  const uint64_t attempts_seen = attempts_;
  try {
    mutate(state_);
  } catch (...) {
    ++applied_seq_;  // whatever it changed is now a dirty change
    throw;
  }
  const uint64_t seq = ++applied_seq_;
  return WaitDurableLocked(lock, seq, durability, attempts_seen);
}

Status Checkpoint::Sync() {
  if (shared_) return EnqueueShared(nullptr);
  std::unique_lock lock(mu_);
  if (durable_seq_ >= applied_seq_) return Status::Ok();
  return WaitDurableLocked(lock, applied_seq_, Durability::kDurable, attempts_);
}

Status Checkpoint::WaitDurableLocked(std::unique_lock<std::mutex>& lock, uint64_t seq,
                                     Durability durability, uint64_t attempts_seen) {
  const bool visible_enough = durability == Durability::kVisible;
  for (;;) {
    if (durable_seq_ >= seq || (visible_enough && visible_seq_ >= seq)) return Status::Ok();
    // The last failed attempt started after we looked, so it carried `seq` (a later successful
    // write would have made it durable, checked above).
    if (failed_attempt_ > attempts_seen && failed_upto_ >= seq) return failed_status_;
    if (!writing_) {
      WriteLocked(lock, durability);  // become the leader; loops back to pick up the outcome
      continue;
    }
    durable_cv_.wait(lock);
  }
}

void Checkpoint::WriteLocked(std::unique_lock<std::mutex>& lock, Durability durability) {
  writing_ = true;
  const uint64_t attempt = ++attempts_;
  const uint64_t upto = applied_seq_;
  ++stats_.writes;
  Status st;
  std::string bytes;
  try {
    Json data = DataToJson(state_, boot_id_, writer_version_);
    lock.unlock();  // followers may mutate (and queue for the next write) while we encode+write
    bytes = EncodeFormat1(data);
  } catch (const std::exception& e) {
    st = Internal(std::string("encode checkpoint: ") + e.what());
  }
  if (lock.owns_lock()) lock.unlock();
  if (st.ok()) {
    CrashPoint("checkpoint-before-write");
    st = env_->WriteFileAtomic(file_, bytes, kFileMode, durability);
    CrashPoint("checkpoint-after-write");
    if (!st.ok()) st = st.WithContext("persist checkpoint " + file_.string());
  }
  lock.lock();
  writing_ = false;
  if (st.ok()) {
    visible_seq_ = std::max(visible_seq_, upto);
    if (durability == Durability::kDurable) durable_seq_ = std::max(durable_seq_, upto);
  } else {
    ++stats_.failed_writes;
    failed_attempt_ = attempt;
    failed_upto_ = upto;
    failed_status_ = st;
  }
  durable_cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// Shared mode.

int Checkpoint::LockFile(int how, Status* st) const {
  auto fd = AcquireLock(env_, lock_path_, lock_timeout_, how, kTxnPollInterval);
  if (!fd.ok()) {
    *st = fd.status();
    return -1;
  }
  return *fd;
}

void Checkpoint::ForgetFileLocked() const {
  if (stamp_fd_ >= 0) ::close(stamp_fd_);
  stamp_fd_ = -1;
  stamp_valid_ = false;
}

namespace {

// Opens `file` and stats the descriptor. -1 and exists=false when it does not exist.
Status OpenAndStat(const fs::path& file, int* fd_out, struct stat* st, bool* exists) {
  *fd_out = -1;
  *exists = false;
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::Ok();
    return ErrnoStatus("open checkpoint " + file.string(), errno);
  }
  if (::fstat(fd, st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus("stat checkpoint " + file.string(), err);
  }
  *fd_out = fd;
  *exists = true;
  return Status::Ok();
}

}  // namespace

Status Checkpoint::RememberFileLocked() const {
  ForgetFileLocked();
  int fd = -1;
  struct stat st {};
  bool exists = false;
  RETURN_IF_ERROR(OpenAndStat(file_, &fd, &st, &exists));
  stamp_ = FileStamp{};
  if (exists) {
    stamp_ = FileStamp{true,
                       static_cast<uint64_t>(st.st_dev),
                       static_cast<uint64_t>(st.st_ino),
                       static_cast<int64_t>(st.st_size),
                       static_cast<int64_t>(st.st_mtim.tv_sec),
                       static_cast<int64_t>(st.st_mtim.tv_nsec)};
  }
  stamp_fd_ = fd;
  stamp_valid_ = true;
  return Status::Ok();
}

Status Checkpoint::RefreshLocked() const {
  if (stamp_valid_) {
    struct stat st {};
    FileStamp now;
    if (::stat(file_.c_str(), &st) == 0) {
      now = FileStamp{true,
                      static_cast<uint64_t>(st.st_dev),
                      static_cast<uint64_t>(st.st_ino),
                      static_cast<int64_t>(st.st_size),
                      static_cast<int64_t>(st.st_mtim.tv_sec),
                      static_cast<int64_t>(st.st_mtim.tv_nsec)};
    } else if (errno != ENOENT) {
      return ErrnoStatus("stat checkpoint " + file_.string(), errno);
    }
    if (now == stamp_) return Status::Ok();
  }
  // Changed (or unknown): re-read. The caller holds the flock, so nobody replaces the file
  // between the stat and the read.
  ++stats_.reloads;
  RETURN_IF_ERROR(RememberFileLocked());
  if (!stamp_.exists) {
    state_ = State{};
    disk_boot_id_.clear();
    return Status::Ok();
  }
  auto content = env_->ReadFile(file_);
  if (!content.ok()) {
    ForgetFileLocked();
    return content.status().WithContext("re-read checkpoint " + file_.string());
  }
  int version = 0;
  auto decoded = Decode(*content, &version);
  if (!decoded.ok()) {
    ForgetFileLocked();
    const Status& why = decoded.status();
    return Status(why.code(),
                  "checkpoint " + file_.string() +
                      " was replaced by another process and cannot be read: " + why.message());
  }
  state_ = std::move(decoded->state);
  disk_boot_id_ = std::move(decoded->boot_id);
  return Status::Ok();
}

Status Checkpoint::EnqueueShared(std::function<void(State&)>* mutate) {
  PendingOp op;
  op.mutate = mutate;
  std::unique_lock lock(mu_);
  if (mutate != nullptr) ++stats_.updates;
  pending_.push_back(&op);
  while (!op.done) {
    if (!writing_) {
      LeadSharedLocked(lock);  // the batch it takes includes `op`
      continue;
    }
    durable_cv_.wait(lock);
  }
  lock.unlock();
  if (op.error) std::rethrow_exception(op.error);
  return op.status;
}

void Checkpoint::LeadSharedLocked(std::unique_lock<std::mutex>& lock) {
  writing_ = true;
  lock.unlock();
  // Lock order: txn_mu_, then the flock, then mu_ (never wait for txn_mu_ holding mu_).
  Status st;
  int fd = -1;
  std::unique_lock txn(txn_mu_, std::defer_lock);
  if (!txn.try_lock_for(lock_timeout_)) {
    st = DeadlineExceeded("checkpoint: another operation of this process held " +
                          lock_path_.string() + " for over " +
                          std::to_string(lock_timeout_.count()) + " ms");
  } else {
    fd = LockFile(LOCK_EX, &st);
  }
  lock.lock();
  std::vector<PendingOp*> batch = std::move(pending_);
  pending_.clear();
  auto finish = [&](const Status& result) {
    for (PendingOp* op : batch) {
      if (op->status.ok()) op->status = result;
      op->done = true;
    }
    writing_ = false;
    durable_cv_.notify_all();
    lock.unlock();
    if (fd >= 0) ::close(fd);  // releases the flock
    if (txn.owns_lock()) txn.unlock();
    lock.lock();
  };
  if (st.ok()) st = RefreshLocked();
  if (!st.ok()) return finish(st);

  // Apply the batch in arrival order to the fresh state.
  State before = state_;
  bool any_mutation = false;
  for (PendingOp* op : batch) {
    if (op->mutate == nullptr) continue;
    any_mutation = true;
    try {
      (*op->mutate)(state_);
    } catch (...) {
      op->error = std::current_exception();  // its changes stay and are written with the batch
    }
  }
  const bool boot_id_stale = !disk_boot_id_.empty() && disk_boot_id_ != boot_id_;
  if (!any_mutation && !boot_id_stale) return finish(Status::Ok());

  ++stats_.writes;
  std::string bytes;
  try {
    bytes = EncodeFormat1(DataToJson(state_, boot_id_, writer_version_));
  } catch (const std::exception& e) {
    st = Internal(std::string("encode checkpoint: ") + e.what());
  }
  lock.unlock();  // followers queue for the next batch while we write
  if (st.ok()) {
    CrashPoint("checkpoint-before-write");
    st = env_->WriteFileAtomic(file_, bytes, kFileMode);
    CrashPoint("checkpoint-after-write");
    if (!st.ok()) st = st.WithContext("persist checkpoint " + file_.string());
  }
  lock.lock();
  if (st.ok()) {
    disk_boot_id_ = boot_id_;
    // A failure here only costs a re-read at the next operation.
    if (!RememberFileLocked().ok()) ForgetFileLocked();
  } else {
    // Another process may write before we try again, so the batch cannot stay in memory as a
    // dirty change: roll back, and re-read at the next operation (the write may have landed).
    ++stats_.failed_writes;
    state_ = std::move(before);
    ForgetFileLocked();
  }
  finish(st);
}

State Checkpoint::Snapshot() const {
  if (!shared_) {
    std::lock_guard lock(mu_);
    return state_;
  }
  State out;
  ReadShared([&] { out = state_; });
  return out;
}

std::optional<PreparedClaim> Checkpoint::Find(std::string_view claim_uid) const {
  std::optional<PreparedClaim> out;
  auto read = [&] {
    auto it = state_.claims.find(claim_uid);
    if (it != state_.claims.end()) out = it->second;
  };
  if (!shared_) {
    std::lock_guard lock(mu_);
    read();
    return out;
  }
  ReadShared(read);
  return out;
}

void Checkpoint::ReadShared(const std::function<void()>& read) const {
  Status st;
  int fd = -1;
  std::unique_lock txn(txn_mu_, std::defer_lock);
  if (txn.try_lock_for(lock_timeout_)) fd = LockFile(LOCK_SH, &st);
  std::lock_guard lock(mu_);
  if (fd < 0 || !RefreshLocked().ok()) ++stats_.stale_reads;
  read();
  if (fd >= 0) ::close(fd);
}

bool Checkpoint::dirty() const {
  std::lock_guard lock(mu_);
  if (shared_) return !disk_boot_id_.empty() && disk_boot_id_ != boot_id_;
  return durable_seq_ < applied_seq_;
}

bool Checkpoint::unwritten() const {
  std::lock_guard lock(mu_);
  if (shared_) return !disk_boot_id_.empty() && disk_boot_id_ != boot_id_;
  return std::max(visible_seq_, durable_seq_) < applied_seq_;
}

Stats Checkpoint::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace accel_dra::checkpoint
