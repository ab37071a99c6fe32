#include "accel_dra/common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>

namespace accel_dra {
namespace {
std::atomic<int> g_verbosity{0};
}

void InitLogging(int verbosity, bool json) {
  g_verbosity.store(verbosity);
  auto logger = spdlog::stderr_logger_mt("accel-dra");
  if (json) {
    logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","msg":"%v"})",
                        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%C%m%d %H:%M:%S.%f %L %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(spdlog::level::trace);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

int LogVerbosity() { return g_verbosity.load(std::memory_order_relaxed); }

}  // namespace accel_dra
