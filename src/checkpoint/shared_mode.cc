#include "shared_mode.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "lock_file.h"

namespace accel_dra::checkpoint {
namespace fs = std::filesystem;
namespace {

// Operations poll the lock faster than Open(): another process holds it for one write at a time.
constexpr std::chrono::milliseconds kTxnPollInterval{10};

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

// ---- TimedGate --------------------------------------------------------------------------------

void SharedCheckpoint::TimedGate::lock() {
  std::unique_lock l(m_);
  cv_.wait(l, [this] { return !held_; });
  held_ = true;
}

bool SharedCheckpoint::TimedGate::try_lock() {
  std::lock_guard l(m_);
  if (held_) return false;
  held_ = true;
  return true;
}

bool SharedCheckpoint::TimedGate::try_lock_for(std::chrono::milliseconds timeout) {
  std::unique_lock l(m_);
  if (!cv_.wait_for(l, timeout, [this] { return !held_; })) return false;
  held_ = true;
  return true;
}

void SharedCheckpoint::TimedGate::unlock() {
  {
    std::lock_guard l(m_);
    held_ = false;
  }
  cv_.notify_one();
}

// ---- Construction -----------------------------------------------------------------------------

SharedCheckpoint::SharedCheckpoint(Setup setup, State state, std::string disk_boot_id)
    : CheckpointBase(std::move(setup)),
      state_(std::move(state)),
      disk_boot_id_(std::move(disk_boot_id)) {}

SharedCheckpoint::~SharedCheckpoint() {
  if (stamp_fd_ >= 0) ::close(stamp_fd_);
}

Status SharedCheckpoint::Start() {
  std::lock_guard lock(mu_);
  return RememberFileLocked();
}

// ---- The file's identity and re-reads ---------------------------------------------------------

SharedCheckpoint::FileStamp SharedCheckpoint::StampOf(const struct stat& st) {
  return FileStamp{true,
                   static_cast<uint64_t>(st.st_dev),
                   static_cast<uint64_t>(st.st_ino),
                   static_cast<int64_t>(st.st_size),
                   static_cast<int64_t>(st.st_mtim.tv_sec),
                   static_cast<int64_t>(st.st_mtim.tv_nsec)};
}

int SharedCheckpoint::LockFile(int how, Status* st) const {
  auto fd = AcquireLock(env_, lock_path_, lock_timeout_, how, kTxnPollInterval);
  if (!fd.ok()) {
    *st = fd.status();
    return -1;
  }
  return *fd;
}

void SharedCheckpoint::ForgetFileLocked() const {
  if (stamp_fd_ >= 0) ::close(stamp_fd_);
  stamp_fd_ = -1;
  stamp_valid_ = false;
}

Status SharedCheckpoint::RememberFileLocked() const {
  ForgetFileLocked();
  int fd = -1;
  struct stat st {};
  bool exists = false;
  RETURN_IF_ERROR(OpenAndStat(file_, &fd, &st, &exists));
  stamp_ = FileStamp{};
  if (exists) {
    stamp_ = StampOf(st);
  }
  stamp_fd_ = fd;
  stamp_valid_ = true;
  return Status::Ok();
}

Status SharedCheckpoint::RefreshLocked() const {
  if (stamp_valid_) {
    struct stat st {};
    FileStamp now;
    if (::stat(file_.c_str(), &st) == 0) {
      now = StampOf(st);
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
  auto decoded = format::Decode(*content);
  if (!decoded.ok()) {
    ForgetFileLocked();
    const Status& why = decoded.status();
    return Status(why.code(),
                  "checkpoint " + file_.string() +
                      " was replaced by another process and cannot be read: " + why.message());
  }
  state_ = std::move(decoded->contents.state);
  disk_boot_id_ = std::move(decoded->contents.boot_id);
  return Status::Ok();
}

// ---- Transactions -----------------------------------------------------------------------------

Status SharedCheckpoint::Update(std::function<void(State&)> mutate, Durability /*durability*/) {
  return Enqueue(&mutate);  // always durable
}

Status SharedCheckpoint::Sync() { return Enqueue(nullptr); }

Status SharedCheckpoint::Enqueue(std::function<void(State&)>* mutate) {
  PendingOp op;
  op.mutate = mutate;
  std::unique_lock lock(mu_);
  if (mutate != nullptr) ++stats_.updates;
  pending_.push_back(&op);
  while (!op.done) {
    if (!leading_) {
      LeadLocked(lock);  // the batch it takes includes `op`
      continue;
    }
    done_cv_.wait(lock);
  }
  lock.unlock();
  if (op.error) std::rethrow_exception(op.error);
  return op.status;
}

void SharedCheckpoint::LeadLocked(std::unique_lock<std::mutex>& lock) {
  leading_ = true;
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
  if (st.ok()) st = RefreshLocked();
  if (st.ok()) st = ApplyAndWriteLocked(lock, batch);
  for (PendingOp* op : batch) {
    if (op->status.ok()) op->status = st;
    op->done = true;
  }
  leading_ = false;
  done_cv_.notify_all();
  lock.unlock();
  if (fd >= 0) ::close(fd);  // releases the flock
  if (txn.owns_lock()) txn.unlock();
  lock.lock();
}

Status SharedCheckpoint::ApplyAndWriteLocked(std::unique_lock<std::mutex>& lock,
                                             const std::vector<PendingOp*>& batch) {
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
  if (!any_mutation && !BootIdStaleLocked()) return Status::Ok();

  ++stats_.writes;
  auto bytes = format::Encode(ContentsOf(state_));
  lock.unlock();  // followers queue for the next batch while we write
  Status st = bytes.ok() ? WriteFile(*bytes, Durability::kDurable) : bytes.status();
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
  return st;
}

// ---- Reads ------------------------------------------------------------------------------------

void SharedCheckpoint::ReadShared(const std::function<void()>& read) const {
  Status st;
  int fd = -1;
  std::unique_lock txn(txn_mu_, std::defer_lock);
  if (txn.try_lock_for(lock_timeout_)) fd = LockFile(LOCK_SH, &st);
  std::lock_guard lock(mu_);
  if (fd < 0 || !RefreshLocked().ok()) ++stats_.stale_reads;
  read();
  if (fd >= 0) ::close(fd);
}

State SharedCheckpoint::Snapshot() const {
  State out;
  ReadShared([&] { out = state_; });
  return out;
}

std::optional<model::PreparedClaim> SharedCheckpoint::Find(std::string_view claim_uid) const {
  std::optional<model::PreparedClaim> out;
  ReadShared([&] {
    auto it = state_.claims.find(claim_uid);
    if (it != state_.claims.end()) out = it->second;
  });
  return out;
}

bool SharedCheckpoint::dirty() const {
  std::lock_guard lock(mu_);
  return BootIdStaleLocked();
}

bool SharedCheckpoint::unwritten() const { return dirty(); }

Stats SharedCheckpoint::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace accel_dra::checkpoint
