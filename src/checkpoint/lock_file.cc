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

}  // namespace

Expected<int> AcquireLock(Env* env, const std::filesystem::path& path,
                          std::chrono::milliseconds timeout, int how,
                          std::chrono::milliseconds max_poll) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kCheckpointFileMode);
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

}  // namespace accel_dra::checkpoint
