#include "accel_dra/common/strings.h"

#include <gtest/gtest.h>

namespace accel_dra {
namespace {

TEST(Utf8Test, WellFormedTextIsValidAndUnchanged) {
  for (const char* s : {"", "plain", "\xc3\xa9t\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                        "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"}) {
    EXPECT_TRUE(IsValidUtf8(s)) << s;
    EXPECT_EQ(ValidUtf8(s), s);
  }
}

TEST(Utf8Test, EveryBadByteBecomesOneReplacementCharacter) {
  const std::string r = "\xef\xbf\xbd";  // U+FFFD
  struct Case {
    const char* in;
    std::string out;
  };
  for (const Case& c : {
           Case{"a\xff", "a" + r},                                 // never in UTF-8
           Case{"\x80x", r + "x"},                                 // stray continuation
           Case{"\xc3", r},                                        // truncated
           Case{"\xe2\x82", r + r},                                // truncated
           Case{"\xc0\xaf", r + r},                                // overlong '/'
           Case{"\xe0\x80\xaf", r + r + r},                        // overlong
           Case{"\xed\xa0\x80", r + r + r},                        // surrogate U+D800
           Case{"\xf4\x90\x80\x80", r + r + r + r},                // above U+10FFFF
           Case{"cu\xe4tom \xc3\xa9", "cu" + r + "tom \xc3\xa9"},  // Latin-1 among UTF-8
       }) {
    EXPECT_FALSE(IsValidUtf8(c.in)) << c.in;
    EXPECT_EQ(ValidUtf8(c.in), c.out) << c.in;
    EXPECT_TRUE(IsValidUtf8(ValidUtf8(c.in)));
  }
}

}  // namespace
}  // namespace accel_dra
