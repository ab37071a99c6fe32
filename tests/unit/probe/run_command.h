#pragma once
// Test helper: runs a shell command and returns its standard output.

#include <cstdio>
#include <string>

namespace accel_dra::probe::testing {

// Runs `cmd` with popen; *exit_status gets pclose's status (0 on success).
inline std::string RunCommand(const std::string& cmd, int* exit_status) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) {
    *exit_status = -1;
    return out;
  }
  char buf[512];
  while (fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  *exit_status = ::pclose(p);
  return out;
}

}  // namespace accel_dra::probe::testing
