#pragma once
// The seam for running host programs (e.g. nvidia-smi). Tests substitute a fake runner, or put a
// fake program on PATH and use the real one.

#include <chrono>
#include <string>
#include <vector>

#include "accel_dra/common/status.h"

namespace accel_dra {

struct CommandResult {
  int exit_code = 0;   // the program's exit status; 128 + N when killed by signal N
  std::string output;  // stdout and stderr interleaved, at most kMaxCommandOutput bytes (the tail)
};

inline constexpr size_t kMaxCommandOutput = 64 * 1024;

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // The process-wide real runner. Never null, never destroyed.
  static CommandRunner* Default();

  // Runs argv (argv[0] is searched on PATH when it has no '/') with stdin from /dev/null, the
  // process environment and no shell, and waits for it. Errors: NotFound when the program does
  // not exist, PermissionDenied when it cannot be executed, DeadlineExceeded when it ran longer
  // than `timeout` (it is then killed), Internal for other spawn failures. A non-zero exit is not
  // an error: it is in the result. Thread-safe.
  virtual Expected<CommandResult> Run(const std::vector<std::string>& argv,
                                      std::chrono::milliseconds timeout);
};

// "prog arg1 'arg with space'": a command line for messages.
std::string CommandLineForDisplay(const std::vector<std::string>& argv);
// The last `max_lines` non-empty lines of `output`, joined with "; ", for one-line messages.
std::string OutputTail(const std::string& output, size_t max_lines = 3);

}  // namespace accel_dra
