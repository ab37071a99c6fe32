#pragma once
// Text helpers the report writers share (report.cc, upstream_results.cc).

#include <string>
#include <string_view>

namespace accel_dra::probe {

// Text for XML character data and attribute values, well-formed whatever the bytes (invalid
// UTF-8, control characters, "]]>"): markup characters as entities; tab, newline and carriage
// return as character references, so attribute values keep them too.
std::string XmlEscape(std::string_view s);
// Seconds with three decimals: "42.500".
std::string Seconds(double s);

}  // namespace accel_dra::probe
