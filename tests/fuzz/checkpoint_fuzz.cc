// Fuzz target: the checkpoint codec (src/checkpoint/format*.cc, formats 1 and 2).
//
// Input: the first byte picks how the rest is used —
//   even: the file's bytes as they are (any format, broken headers and checksums included);
//   odd:  a format-2 payload, wrapped in the header with its correct checksum, so that mutations
//         reach the record decoder instead of stopping at the checksum.
// Promises checked: Decode never crashes or throws; whatever decodes encodes (as format 2) and
// decodes again to the same contents, and encoding is deterministic (a fixed point).

#include <cstdint>
#include <string>
#include <string_view>

#include "accel_dra/checkpoint/checkpoint.h"
#include "format.h"
#include "format_json.h"
#include "fuzz_support.h"

namespace cf = accel_dra::checkpoint::format;
using accel_dra::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string file;
  if ((data[0] & 1) == 0) {
    file.assign(rest);
  } else {
    file = std::string(R"({"version": 2, "checksum": ")") +
           cf::Hex32(accel_dra::checkpoint::Crc32c(rest)) + R"(", "data": )" + std::string(rest) +
           "}\n";
  }
  auto decoded = cf::Decode(file);
  if (!decoded.ok()) {
    Check(!decoded.status().message().empty(), "a decode error without a message");
    return 0;
  }
  for (const auto& [uid, claim] : decoded->contents.state.claims) {
    for (const auto& d : claim.devices) {
      const auto& s = d.sharing;
      const bool partitions = s.strategy == accel_dra::model::SharingStrategy::kSpacePartitioning;
      Check(partitions ? s.partition_count >= accel_dra::model::kMinPartitionCount &&
                             s.partition_count <= accel_dra::model::kMaxPartitionCount
                       : s.partition_count == 0,
            "a decoded record breaks the partition count invariant (model/sharing.h)");
      Check(s.strategy == accel_dra::model::SharingStrategy::kTimeSlicing ||
                s.interval == accel_dra::model::TimeSliceInterval::kDefault,
            "a decoded record has an interval without TimeSlicing");
    }
  }
  auto encoded = cf::Encode(decoded->contents);
  Check(encoded.ok(), "Encode failed on decoded contents: " + encoded.status().ToString());
  auto again = cf::Decode(*encoded);
  Check(again.ok(), "the encoded file does not decode: " + again.status().ToString());
  Check(again->format_version == accel_dra::checkpoint::kCurrentFormatVersion,
        "re-encoded file is not the current format");
  Check(again->contents.state == decoded->contents.state, "records changed in a round trip");
  Check(again->contents.boot_id == decoded->contents.boot_id, "bootId changed in a round trip");
  Check(again->contents.writer_version == decoded->contents.writer_version,
        "writerVersion changed in a round trip");
  auto encoded2 = cf::Encode(again->contents);
  Check(encoded2.ok() && *encoded2 == *encoded, "encoding is not deterministic");
  return 0;
}
