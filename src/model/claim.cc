// CallContext: a caller's deadline and cancellation, without gRPC types.

#include "accel_dra/model/claim.h"

#include <string>
#include <utility>

namespace accel_dra::model {

CallContext::CallContext(std::optional<Clock::time_point> deadline, std::function<bool()> cancelled,
                         std::function<Clock::time_point()> now)
    : deadline_(deadline), cancelled_(std::move(cancelled)), now_(std::move(now)) {}

Status CallContext::Check() const {
  if (cancelled_ && cancelled_()) return Cancelled("the caller cancelled the call");
  if (!deadline_) return Status::Ok();
  const Clock::time_point now = now_ ? now_() : Clock::now();
  if (now < *deadline_) return Status::Ok();
  const auto late = std::chrono::duration_cast<std::chrono::milliseconds>(now - *deadline_);
  return DeadlineExceeded("the caller's deadline passed " + std::to_string(late.count()) +
                          " ms ago");
}

}  // namespace accel_dra::model
