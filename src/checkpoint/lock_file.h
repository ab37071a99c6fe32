#pragma once
// Internal: the checkpoint's lock file (<data dir>/checkpoint.lock). flock needs a real file
// descriptor, so this is the one piece of the checkpoint's file I/O that does not go through Env.
// Descriptors are O_CLOEXEC: exec'd helpers do not inherit the lock (a fork()ed child that does
// not exec shares it until it exits). Closing the descriptor releases the lock.

#include <sys/file.h>

#include <chrono>
#include <filesystem>

#include "accel_dra/common/env.h"
#include "accel_dra/common/status.h"

namespace accel_dra::checkpoint {

// Mode of the files the checkpoint creates (lock file and checkpoint).
inline constexpr mode_t kCheckpointFileMode = 0600;
// How often Open() polls at most for another process's lock.
inline constexpr std::chrono::milliseconds kLockPollInterval{100};

// Opens the lock file (creating it) and flocks it (`how` = LOCK_EX or LOCK_SH), polling with a
// backoff from 1 ms up to `max_poll` until `timeout` (measured with env->MonotonicNow()).
// Fair between contenders: a waiter first takes a turnstile (an OFD byte-range lock on the same
// file, far beyond its text) and holds it while it waits for the flock, and every caller takes
// the turnstile before the flock, so a holder that releases the flock and wants it again at once
// waits behind the waiter instead of starving it (polling alone almost never hits the instant
// between an unlock and the next lock). Where OFD locks are unavailable, the flock alone. An
// exclusive holder records its pid in the file, for the message other processes get:
// FailedPrecondition "another accel-dra plugin process (pid N?) holds <path>; is a second plugin
// running on this node?". Returns the descriptor that holds the lock.
Expected<int> AcquireLock(Env* env, const std::filesystem::path& path,
                          std::chrono::milliseconds timeout, int how = LOCK_EX,
                          std::chrono::milliseconds max_poll = kLockPollInterval);

}  // namespace accel_dra::checkpoint
