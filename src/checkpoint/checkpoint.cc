// Checkpoint::Open: what both modes do before they diverge (lock, boot ID, temp files, loading
// the file and moving an unusable one aside), and the write both modes use.

#include "accel_dra/checkpoint/checkpoint.h"

#include <unistd.h>

#include <utility>

#include "accel_dra/build_info.h"
#include "accel_dra/common/fault.h"
#include "accel_dra/common/metrics.h"
#include "accel_dra/common/strings.h"
#include "checkpoint_base.h"
#include "exclusive_mode.h"
#include "format.h"
#include "lock_file.h"
#include "shared_mode.h"

namespace accel_dra::checkpoint {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kBootIdPath = "/proc/sys/kernel/random/boot_id";

struct LoadResult {
  State state;
  LoadReport report;
};

// Moves the unusable `file` aside so an operator can inspect it; the warning for the report.
Expected<LoadResult> MoveAside(Env* env, const fs::path& file, const Status& why) {
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(env->Now().time_since_epoch());
  fs::path base = file;
  base += ".corrupt-" + std::to_string(secs.count());
  fs::path target = base;
  for (int i = 1; env->Exists(target); ++i) {
    target = base;
    // Two appends, not `"." + std::string&&`: GCC 12 bug 105329 (-Wrestrict false positive at
    // -O2+).
    target += ".";
    target += std::to_string(i);
  }
  Status moved = env->Rename(file, target);
  if (!moved.ok()) {
    return moved.WithContext("checkpoint " + file.string() + " is unusable (" + why.message() +
                             ") and could not be moved aside");
  }
  std::string what =
      why.code() == Code::kFailedPrecondition ? "cannot be read by this build" : "is corrupt";
  LoadResult result;
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

// Loads `file` (the caller holds the lock). Unusable files are moved aside; see the header.
Expected<LoadResult> LoadFile(Env* env, const fs::path& file, const std::string& boot_id) {
  auto content = env->ReadFile(file);
  if (!content.ok()) {
    if (content.status().code() == Code::kNotFound) return LoadResult{};
    return content.status().WithContext("read checkpoint");
  }
  auto decoded = format::Decode(*content);
  if (!decoded.ok()) return MoveAside(env, file, decoded.status());
  LoadResult result;
  result.report.format_version = decoded->format_version;
  result.report.previous_boot_id = decoded->contents.boot_id;
  result.report.previous_writer_version = decoded->contents.writer_version;
  result.report.rebooted = decoded->contents.boot_id != boot_id;
  result.state = std::move(decoded->contents.state);
  return result;
}

// The boot ID of the running system, under `host_root`.
Expected<std::string> ReadBootId(Env* env, const HostRoot& host_root) {
  fs::path path = host_root.Path(kBootIdPath);
  auto raw = env->ReadFile(path);
  if (!raw.ok()) {
    return FailedPrecondition("checkpoint: cannot read the boot ID: " + raw.status().message());
  }
  std::string boot_id = Trim(*raw);
  if (boot_id.empty()) {
    return FailedPrecondition("checkpoint: boot ID file " + path.string() + " is empty");
  }
  return boot_id;
}

// Removes temp files of writes a crash interrupted (Env::WriteFileAtomic names them
// ".<name>.tmp-*"). The caller holds the lock, so nobody else is writing one.
int RemoveTempFiles(Env* env, const fs::path& data_dir) {
  const std::string temp_prefix = "." + std::string(kCheckpointFileName) + ".tmp-";
  int removed = 0;
  auto names = env->ListDir(data_dir);
  if (!names.ok()) return 0;
  for (const auto& name : *names) {
    if (name.rfind(temp_prefix, 0) == 0 && env->RemoveFile(data_dir / name).ok()) ++removed;
  }
  return removed;
}

// Everything Open() does under the exclusive flock before a mode takes over.
Expected<CheckpointBase::Setup> Prepare(Env* env, const fs::path& data_dir,
                                        const HostRoot& host_root, const OpenOptions& options,
                                        State* state) {
  ASSIGN_OR_RETURN(std::string boot_id, ReadBootId(env, host_root));
  CheckpointBase::Setup setup;
  setup.env = env;
  setup.dir = data_dir;
  setup.writer_version =
      options.writer_version.empty() ? std::string(build_info::kVersion) : options.writer_version;
  setup.lock_timeout = options.lock_timeout;
  const int removed = RemoveTempFiles(env, data_dir);
  ASSIGN_OR_RETURN(LoadResult loaded, LoadFile(env, data_dir / kCheckpointFileName, boot_id));
  setup.boot_id = std::move(boot_id);
  setup.report = std::move(loaded.report);
  setup.report.removed_temp_files = removed;
  *state = std::move(loaded.state);
  return setup;
}

}  // namespace

Expected<std::unique_ptr<Checkpoint>> Checkpoint::Open(Env* env, const fs::path& data_dir,
                                                       const HostRoot& host_root,
                                                       OpenOptions options) {
  if (env == nullptr) return InvalidArgument("checkpoint: env is null");
  RETURN_IF_ERROR(env->CreateDirs(data_dir, 0700).WithContext("checkpoint data directory"));
  ASSIGN_OR_RETURN(const int lock_fd,
                   AcquireLock(env, data_dir / kLockFileName, options.lock_timeout));
  State state;
  auto setup = Prepare(env, data_dir, host_root, options, &state);
  if (!setup.ok()) {
    ::close(lock_fd);
    return setup.status();
  }
  if (!options.shared) {
    // Owns the flock from here on.
    return std::unique_ptr<Checkpoint>(
        new ExclusiveCheckpoint(std::move(*setup), lock_fd, std::move(state)));
  }
  // Shared: still under the flock, what we loaded is what is on disk now; then release it.
  std::string disk_boot_id = setup->report.previous_boot_id;
  auto cp = std::make_unique<SharedCheckpoint>(std::move(*setup), std::move(state),
                                               std::move(disk_boot_id));
  Status started = cp->Start();
  ::close(lock_fd);
  if (!started.ok()) return started;
  return std::unique_ptr<Checkpoint>(std::move(cp));
}

CheckpointBase::CheckpointBase(Setup setup)
    : env_(setup.env),
      dir_(std::move(setup.dir)),
      file_(dir_ / kCheckpointFileName),
      lock_path_(dir_ / kLockFileName),
      boot_id_(std::move(setup.boot_id)),
      writer_version_(std::move(setup.writer_version)),
      lock_timeout_(setup.lock_timeout),
      report_(std::move(setup.report)) {}

Status CheckpointBase::WriteFile(const std::string& bytes, Durability durability) const {
  CrashPoint("checkpoint-before-write");
  const auto t0 = std::chrono::steady_clock::now();
  Status st = env_->WriteFileAtomic(file_, bytes, kCheckpointFileMode, durability);
  Metrics().CheckpointWrite(SecondsSince(t0), st.ok());
  CrashPoint("checkpoint-after-write");
  if (!st.ok()) return st.WithContext("persist checkpoint " + file_.string());
  return st;
}

}  // namespace accel_dra::checkpoint
