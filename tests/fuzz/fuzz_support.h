#pragma once
// Shared by the libFuzzer targets in tests/fuzz: a check that turns a broken promise into a crash
// the fuzzer reports (with the input saved), and quiet logging (parsers log what they reject;
// at millions of inputs that would be most of the run time).

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace accel_dra::fuzz {

// Aborts with `what` when `ok` is false: libFuzzer saves the input as a crash.
inline void Check(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz check failed: %s\n", what.c_str());
  std::abort();
}

// Called by LLVMFuzzerInitialize (fuzz_support.cc, in every target). ACCEL_DRA_FUZZ_LOG=1 keeps the
// logs (to see why an input is rejected while reproducing it).
inline void QuietLogs() {
  const char* keep = std::getenv("ACCEL_DRA_FUZZ_LOG");
  if (keep == nullptr || std::string(keep) != "1") spdlog::set_level(spdlog::level::off);
}

}  // namespace accel_dra::fuzz
