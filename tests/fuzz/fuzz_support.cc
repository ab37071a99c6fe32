// The LLVMFuzzerInitialize of every fuzz target: quiet logs (see fuzz_support.h).

#include "fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  accel_dra::fuzz::QuietLogs();
  return 0;
}
