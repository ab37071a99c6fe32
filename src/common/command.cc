#include "accel_dra/common/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "accel_dra/common/env.h"

extern char** environ;

namespace accel_dra {
namespace {

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

CommandRunner* CommandRunner::Default() {
  static CommandRunner* runner = new CommandRunner();
  return runner;
}

Expected<CommandResult> CommandRunner::Run(const std::vector<std::string>& argv,
                                           std::chrono::milliseconds timeout) {
  if (argv.empty() || argv[0].empty()) return InvalidArgument("no program to run");
  const std::string shown = CommandLineForDisplay(argv);
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus("pipe for " + shown, errno);
  int rd = fds[0];
  int wr = fds[1];

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, wr, 1);
  posix_spawn_file_actions_adddup2(&actions, wr, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The plugin blocks SIGINT/SIGTERM in all threads; the child must start with them unblocked.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  CloseFd(wr);
  if (rc != 0) {
    CloseFd(rd);
    if (rc == ENOENT) return NotFound(shown + ": " + argv[0] + " not found (not on PATH?)");
    if (rc == EACCES)
      return Status(Code::kPermissionDenied, shown + ": " + argv[0] + " is not executable");
    return Internal(shown + ": cannot start: " + std::strerror(rc));
  }

  CommandResult result;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  char buf[4096];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{rd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) continue;  // the deadline check above ends the loop
    ssize_t got = ::read(rd, buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the program (and whatever inherited the pipe) closed it
    result.output.append(buf, static_cast<size_t>(got));
    if (result.output.size() > kMaxCommandOutput) {
      result.output.erase(0, result.output.size() - kMaxCommandOutput);
    }
  }
  CloseFd(rd);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return DeadlineExceeded(shown + ": still running after " + std::to_string(timeout.count()) +
                            " ms; killed");
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

std::string CommandLineForDisplay(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$") == std::string::npos;
    out += plain ? a : "'" + a + "'";
  }
  return out;
}

std::string OutputTail(const std::string& output, size_t max_lines) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= output.size()) {
    size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    std::string line = output.substr(start, end - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) lines.push_back(std::move(line));
    start = end + 1;
  }
  std::string out;
  size_t from = lines.size() > max_lines ? lines.size() - max_lines : 0;
  for (size_t i = from; i < lines.size(); ++i) {
    if (!out.empty()) out += "; ";
    out += lines[i];
  }
  return out;
}

}  // namespace accel_dra
