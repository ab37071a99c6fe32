#include "accel_dra/common/metrics.h"

#include <atomic>

namespace accel_dra {
namespace {
MetricsRecorder g_noop;
std::atomic<MetricsRecorder*> g_recorder{&g_noop};
}  // namespace

MetricsRecorder& Metrics() { return *g_recorder.load(std::memory_order_acquire); }

void SetMetrics(MetricsRecorder* recorder) {
  g_recorder.store(recorder != nullptr ? recorder : &g_noop, std::memory_order_release);
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace accel_dra
