// Reader for the Extreme Classification Repository sparse format:
//
//   N D L                      optional header: documents, features, labels
//   l1,l2,... f:v f:v ...      one document per line
//
// A document without labels starts with a blank, or its first token already
// holds a ':' (no label field at all). Columns come back sorted per row; a
// repeated feature id or label on one line is an error, as is anything that
// does not fit the grammar. Errors are xmc::ParseError naming file and line.
// A UTF-8 byte-order mark before the first line is ignored. Line length and
// labels per document are capped (checked while scanning, before anything is
// stored for the line) so a hostile file cannot make the reader grow without bound.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/common/sparse.h"

namespace xmc {

struct XcData {
  CsrMatrix X;              // features, float32 values
  CsrMatrix Y;              // labels, all values 1
  bool had_header = false;
};

struct XcReadOptions {
  int64_t n_features = -1;  // < 0: from the header, else max id + 1
  int64_t n_labels = -1;    // < 0: from the header, else max id + 1
  int threads = 0;          // <= 0: all cores
  // Bytes per parallel work item; small values exercise chunk boundaries in tests.
  int64_t min_chunk_bytes = 1 << 20;
  // Most bytes on one line, line ending excluded; most label ids on one line.
  int64_t max_line_bytes = int64_t{64} << 20;
  int64_t max_labels_per_doc = 100000;
};

// Parses bytes already in memory; `name` is what error messages call the file.
XcData parse_xc(const char* data, size_t size, const std::string& name,
                const XcReadOptions& opts);

// Maps (or reads) the file and parses it.
XcData read_xc_file(const std::string& path, const XcReadOptions& opts);

// The same file read a chunk of documents at a time, by the same rules as read_xc_file:
// the header, BOM, empty-file and limit checks happen at construction, each error names
// the line the whole-file read would name, and the header's document count is checked
// when the last chunk is read. Pages already parsed are given back, so memory holds one
// chunk, not the file. Without n_labels or a header, a chunk's Y is as wide as its own
// largest label id + 1.
class XcChunkReader {
 public:
  XcChunkReader(const std::string& path, const XcReadOptions& opts);
  // Over bytes the caller keeps alive; `name` is what errors call the file.
  XcChunkReader(const char* data, size_t size, const std::string& name, const XcReadOptions& opts);
  ~XcChunkReader();
  XcChunkReader(const XcChunkReader&) = delete;
  XcChunkReader& operator=(const XcChunkReader&) = delete;

  // The next at most max_docs documents; none once the file is done.
  XcData next(int64_t max_docs);
  bool had_header() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace xmc
