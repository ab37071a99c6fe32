#include "lock_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <string_view>
#include <thread>

#include "accel_dra/common/strings.h"

namespace accel_dra::checkpoint {
namespace {

// The pid an exclusive holder wrote, "" when there is none.
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

// The turnstile: an OFD byte-range lock far beyond the pid text of the lock file (OFD locks and
// flock are independent on Linux; OFD locks belong to the open file description, so they also
// separate threads of one process). A waiter holds it while it waits for the flock, and whoever
// wants the flock must take it first, so a process that releases the flock and at once wants it
// again queues behind the waiter instead of winning every race against a poller.
constexpr off_t kTurnstileOffset = off_t{1} << 30;
constexpr std::chrono::milliseconds kTurnstilePoll{1};

// 1: taken, 0: busy, -errno: cannot be used (the flock alone still excludes).
int TryTurnstile(int fd, short type) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = kTurnstileOffset;
  fl.l_len = 1;
  for (;;) {
    if (::fcntl(fd, F_OFD_SETLK, &fl) == 0) return 1;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EACCES ? 0 : -errno;
  }
}

// Polls `attempt` (1 done, 0 busy, <0 -errno) with a backoff from 1 ms up to `max_poll` until
// `deadline`. Returns the last answer (0 when the deadline passed).
template <typename Attempt>
int PollUntil(Env* env, std::chrono::steady_clock::time_point deadline,
              std::chrono::milliseconds max_poll, Attempt attempt) {
  std::chrono::milliseconds poll{1};
  for (;;) {
    const int r = attempt();
    if (r != 0) return r;
    const auto now = env->MonotonicNow();
    if (now >= deadline) return 0;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(poll, deadline - now));
    poll = std::min(poll * 2, max_poll);
  }
}

int TryFlock(int fd, int how) {
  for (;;) {
    if (::flock(fd, how | LOCK_NB) == 0) return 1;
    if (errno == EINTR) continue;
    return errno == EWOULDBLOCK ? 0 : -errno;
  }
}

}  // namespace

Expected<int> AcquireLock(Env* env, const std::filesystem::path& path,
                          std::chrono::milliseconds timeout, int how,
                          std::chrono::milliseconds max_poll) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kCheckpointFileMode);
  if (fd < 0) return ErrnoStatus("open lock file " + path.string(), errno);
  const auto deadline = env->MonotonicNow() + timeout;
  const int turn = PollUntil(env, deadline, max_poll, [&] { return TryTurnstile(fd, F_WRLCK); });
  int locked = 0;
  if (turn != 0) {  // taken, or unusable (then the flock alone decides, unfairly but safely)
    // The turnstile's holder is next in line and the only one polling the flock: it polls every
    // millisecond, so a hand-over costs little more than the holder's operation.
    const auto flock_poll = turn > 0 ? std::min(max_poll, kTurnstilePoll) : max_poll;
    locked = PollUntil(env, deadline, flock_poll, [&] { return TryFlock(fd, how); });
    if (turn > 0) TryTurnstile(fd, F_UNLCK);
  }
  if (locked < 0) {
    ::close(fd);
    return ErrnoStatus("lock " + path.string(), -locked);
  }
  if (locked == 0) {
    std::string holder = ReadHolderPid(fd);
    ::close(fd);
    return FailedPrecondition("another accel-dra plugin process (pid " + holder + "?) holds " +
                              path.string() + "; is a second plugin running on this node?");
  }
  if (how != LOCK_EX) return fd;
  // Record who holds it (diagnostics only; a failure here is harmless).
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] ssize_t n = ::pwrite(fd, pid.data(), pid.size(), 0);
  }
  return fd;
}

}  // namespace accel_dra::checkpoint
