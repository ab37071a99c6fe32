#include "accel_dra/model/prepared_claim.h"

namespace accel_dra::model {

std::string_view ClaimStateName(ClaimState state) {
  switch (state) {
    case ClaimState::kPrepareStarted:
      return "PrepareStarted";
    case ClaimState::kPrepareCompleted:
      return "PrepareCompleted";
  }
  return "Unknown";
}

}  // namespace accel_dra::model
