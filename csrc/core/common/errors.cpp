#include "core/common/errors.h"

namespace xmc {

static std::string locate(const std::string& file, int64_t line, const std::string& message) {
  if (line > 0) return file + ":" + std::to_string(line) + ": " + message;
  return file + ": " + message;
}

ParseError::ParseError(const std::string& file, int64_t line, const std::string& message)
    : std::runtime_error(locate(file, line, message)), file_(file), line_(line), message_(message) {}

}  // namespace xmc
