#pragma once
// Crash points for crash-recovery tests. A named point kills the process with SIGKILL when the
// environment variable ACCEL_DRA_CRASH_AT names it (read once at start). Production never sets it;
// the check costs one string comparison against an empty string.

#include <string_view>

namespace accel_dra {

void CrashPoint(std::string_view name);

}  // namespace accel_dra
