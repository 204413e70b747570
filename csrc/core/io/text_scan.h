// Byte-level helpers shared by the text parsers. Hand-written because the
// parsers spend most of their time here and the standard library's locale-aware
// routines are several times slower.
#pragma once
#include <cfloat>
#include <cstddef>
#include <cstdint>
#include <cstring>
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

// Decimal to float32 for the common short numbers ("1", "0.0845", "3.2e-4"),
// correctly rounded; returns nullptr whenever it cannot be sure, and the caller
// then uses std::from_chars (which took 40% of the parse time on its own).
// m * 10^e is computed in double, exactly rounded when m <= 2^53 and |e| <= 22
// (Clinger's fast path). Rounding that double to float is then exact too unless
// the double sits exactly on a midpoint between two floats: those go to from_chars.
inline const char* parse_float_fast(const char* p, const char* end, float& out) {
  static const double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  bool neg = false;
  if (p < end && *p == '-') { neg = true; ++p; }
  uint64_t m = 0;
  int sig = 0, e10 = 0;
  bool any = false;
  for (; p < end; ++p) {
    unsigned d = static_cast<unsigned char>(*p) - '0';
    if (d > 9) break;
    if ((m | d) && ++sig > 19) return nullptr;
    m = m * 10 + d;
    any = true;
  }
  if (p < end && *p == '.') {
    for (++p; p < end; ++p) {
      unsigned d = static_cast<unsigned char>(*p) - '0';
      if (d > 9) break;
      if ((m | d) && ++sig > 19) return nullptr;
      m = m * 10 + d;
      --e10;
      any = true;
    }
  }
  if (!any) return nullptr;
  if (p < end && (*p == 'e' || *p == 'E')) {
    ++p;
    bool eneg = false;
    if (p < end && (*p == '+' || *p == '-')) { eneg = *p == '-'; ++p; }
    int x = 0;
    const char* digits = p;
    for (; p < end && x < 1000; ++p) {
      unsigned d = static_cast<unsigned char>(*p) - '0';
      if (d > 9) break;
      x = x * 10 + static_cast<int>(d);
    }
    if (p == digits || x >= 1000) return nullptr;
    e10 += eneg ? -x : x;
  }
  if (m > (uint64_t{1} << 53) || e10 < -22 || e10 > 22) return nullptr;
  double v = static_cast<double>(m);
  v = e10 < 0 ? v / kPow10[-e10] : v * kPow10[e10];
  if (v != 0 && (v < FLT_MIN || v > FLT_MAX)) return nullptr;  // subnormal or overflow: from_chars decides
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  if ((bits & ((uint64_t{1} << 29) - 1)) == (uint64_t{1} << 28)) return nullptr;
  float f = static_cast<float>(v);
  out = neg ? -f : f;
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
