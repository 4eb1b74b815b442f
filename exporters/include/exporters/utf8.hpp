// Text from the target's memory is bytes: these make it well-formed UTF-8 before any format sees it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pysample::exporters {

inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// The length of the well-formed UTF-8 sequence at `at` and its code point, or 0 when the bytes
// there are not one (stray continuation bytes, overlong forms, surrogates, past U+10FFFF, truncation).
std::size_t decode_utf8(std::string_view text, std::size_t at, char32_t& code_point);

// `text` with every byte that is not part of well-formed UTF-8 replaced by U+FFFD.
std::string valid_utf8(std::string_view text);

// `text` made safe to print as part of one line: valid UTF-8, with control characters spelled
// "\xNN" and the line and paragraph separators U+2028 and U+2029 spelled "\u2028" and "\u2029",
// so that a name from the target can neither end a line nor drive a terminal.
std::string escape_control_characters(std::string_view text);

}  // namespace pysample::exporters
