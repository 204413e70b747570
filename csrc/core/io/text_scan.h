// Byte-level helpers shared by the text parsers. Hand-written because the
// parsers spend most of their time here and the standard library's locale-aware
// routines are several times slower.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace xmc {
namespace io {

inline bool is_blank(char c) { return c == ' ' || c == '\t'; }

// Skips a run of ASCII digits starting at p and stores their value in out.
// Returns the first byte after the digits, or nullptr when there is no digit or
// the value exceeds max_value (the caller reports the token).
inline const char* parse_uint(const char* p, const char* end, int64_t max_value, int64_t& out) {
  const char* start = p;
  int64_t v = 0;
  while (p < end) {
    unsigned d = static_cast<unsigned char>(*p) - '0';
    if (d > 9) break;
    v = v * 10 + d;
    if (v > max_value) return nullptr;
    ++p;
  }
  if (p == start) return nullptr;
  out = v;
  return p;
}

// End of the whitespace-free token starting at p.
inline const char* token_end(const char* p, const char* end) {
  while (p < end && !is_blank(*p)) ++p;
  return p;
}

// The token quoted for an error message: at most ~40 bytes, non-printable
// bytes escaped so the message itself stays valid text.
inline std::string show_token(const char* b, const char* e) {
  constexpr std::ptrdiff_t kMax = 40;
  std::string out = "'";
  const char* stop = (e - b > kMax) ? b + kMax : e;
  for (const char* p = b; p < stop; ++p) {
    unsigned char c = static_cast<unsigned char>(*p);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (stop != e) out += "...";
  out += "'";
  return out;
}

}  // namespace io
}  // namespace xmc
