#pragma once
// Small string helpers used across components (one definition each).

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace accel_dra {

// `s` without leading and trailing ASCII whitespace (space, \t, \n, \v, \f, \r).
std::string_view TrimView(std::string_view s);
std::string Trim(std::string_view s);

// The items separated by `sep`: Join({"a", "b"}, ", ") == "a, b"; no items: "".
std::string Join(const std::vector<std::string>& items, std::string_view sep = ",");
std::string Join(std::initializer_list<std::string_view> items, std::string_view sep = ",");

// `s` in double quotes for a message, escaped as a JSON string (control characters, quotes and
// backslashes escaped; invalid UTF-8 replaced by U+FFFD), so a hostile value cannot break the
// line or the quoting: Quote("a\"b") == "\"a\\\"b\"".
std::string Quote(std::string_view s);

// Whether `s` is well-formed UTF-8 (no stray continuation bytes, truncated or overlong sequences,
// surrogates or code points above U+10FFFF): what a JSON body the kube client sends must be.
bool IsValidUtf8(std::string_view s);
// `s` with every byte that does not begin a well-formed UTF-8 sequence replaced by U+FFFD;
// well-formed text comes back unchanged.
std::string ValidUtf8(std::string_view s);

}  // namespace accel_dra
