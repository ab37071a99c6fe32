#pragma once
// Logging: spdlog underneath, klog-style verbosity (-v N) on top. Level 0 is always on; higher
// levels are enabled by the -v flag. Use LOG_V(n, fmt, args...) for verbose messages.

#include <spdlog/spdlog.h>

namespace accel_dra {

// Configures the default logger on stderr. Text: `<MMDD HH:MM:SS.us> <level letter> <message>`.
// JSON (--log-format=json): one object per line, {"ts":"<UTC RFC 3339>","level":"info",
// "msg":"<message, escaped>"} plus "claim":"<ns>/<name>","claimUID":"<uid>" when the message
// names a claim as the claims core does ("ResourceClaim <ns>/<name> (uid <uid>)"). InitLogging
// replaces an earlier configuration.
void InitLogging(int verbosity, bool json = false);
int LogVerbosity();

}  // namespace accel_dra

#define LOG_V(n, ...)                                                    \
  do {                                                                   \
    if (::accel_dra::LogVerbosity() >= (n)) ::spdlog::info(__VA_ARGS__); \
  } while (0)
