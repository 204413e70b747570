// Writer for the Extreme Classification Repository sparse format (see
// xc_reader.h). Values are written as the shortest decimal that reads back to
// the same float32, so write -> read is exact.
#pragma once
#include <cstdint>
#include <string>

#include "core/common/sparse.h"

namespace xmc {

struct XcWriteOptions {
  bool header = true;
  int threads = 0;  // <= 0: all cores
};

// Writes X (features) and Y (labels; only the pattern is used) to `path`,
// replacing it. Both must have the same rows and sorted, distinct columns.
// Callers that need atomic replacement pass a temporary path and rename it.
void write_xc_file(const std::string& path, const CsrView& X, const CsrView& Y,
                   const XcWriteOptions& opts);

}  // namespace xmc
