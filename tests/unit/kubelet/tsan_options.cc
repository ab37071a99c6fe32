// ThreadSanitizer defaults for this test binary. Debian's gRPC/abseil/protobuf libraries are not
// TSan-instrumented, so TSan cannot see their internal synchronization and would flag every
// hand-off between gRPC threads. ignore_noninstrumented_modules makes TSan ignore interceptor
// calls (malloc/free, memcpy, ...) made from those libraries; races between accesses in our own
// (instrumented) code are still reported.
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_options() { return "ignore_noninstrumented_modules=1"; }
#endif
