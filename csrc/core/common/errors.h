// Errors a user can act on: where (file, line), what was expected, what was found.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace xmc {

// Raised by every parser; the bindings turn it into xmc.data.DataFormatError.
class ParseError : public std::runtime_error {
 public:
  ParseError(const std::string& file, int64_t line, const std::string& message);
  const std::string& file() const { return file_; }
  int64_t line() const { return line_; }  // 1-based; 0 when the error is about the whole file
  const std::string& message() const { return message_; }

 private:
  std::string file_;
  int64_t line_;
  std::string message_;
};

}  // namespace xmc
