#pragma once
// Errors as values. A Status is either OK or a code plus a human-readable message that says what
// went wrong and, where possible, what the user should do. Expected<T> holds a T or a non-OK
// Status. Neither ever throws; they cross module and gRPC boundaries instead of exceptions.

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace accel_dra {

enum class Code {
  kOk = 0,
  kInvalidArgument,     // the input is malformed; retrying the same input will not help
  kNotFound,            // the object does not exist
  kAlreadyExists,       // create of an object that exists
  kConflict,            // optimistic-concurrency conflict (HTTP 409), retry after re-reading
  kPermissionDenied,    // authenticated but not allowed (HTTP 403)
  kUnauthenticated,     // credentials missing or rejected (HTTP 401)
  kFailedPrecondition,  // the system is not in a state that allows the operation
  kUnavailable,         // transient: connection refused, 429, 5xx; retry with backoff
  kDeadlineExceeded,    // a timeout expired
  kCancelled,           // the caller gave up on the operation
  kResourceExhausted,   // disk full, too many objects
  kDataLoss,            // stored data is corrupt
  kInternal,            // a bug or an unexpected failure
};

std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return {}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "CODE: message", or "OK".
  std::string ToString() const;
  // The same status with "context: " prepended to the message (OK stays OK).
  Status WithContext(std::string_view context) const;

  // Optional HTTP status of the apiserver answer this status came from (0 when none).
  int http_status() const { return http_status_; }
  Status& set_http_status(int s) {
    http_status_ = s;
    return *this;
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
  int http_status_ = 0;
};

inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {Code::kFailedPrecondition, std::move(m)};
}
inline Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status DataLoss(std::string m) { return {Code::kDataLoss, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }
inline Status Cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }

// Expected<T>: a value or an error. Access to value() on an error is a programming bug (asserts).
template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Expected(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Expected constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T value_or(T fallback) const { return ok() ? std::get<T>(v_) : std::move(fallback); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace accel_dra

// Propagation helpers.
#define ACCEL_DRA_CONCAT_INNER(a, b) a##b
#define ACCEL_DRA_CONCAT(a, b) ACCEL_DRA_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)         \
  do {                                \
    ::accel_dra::Status _st = (expr); \
    if (!_st.ok()) return _st;        \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(ACCEL_DRA_CONCAT(_expected_, __LINE__), lhs, expr)
