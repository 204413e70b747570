#include "core/io/xc_writer.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/common/parallel.h"

namespace xmc {
namespace {

void append_int(std::string& s, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  s.append(buf, r.ptr);
}

void format_rows(const CsrView& X, const CsrView& Y, int64_t r0, int64_t r1, std::string& s) {
  char buf[64];
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t k = Y.indptr[r]; k < Y.indptr[r + 1]; ++k) {
      if (k > Y.indptr[r]) s.push_back(',');
      append_int(s, Y.indices[k]);
    }
    for (int64_t k = X.indptr[r]; k < X.indptr[r + 1]; ++k) {
      s.push_back(' ');
      append_int(s, X.indices[k]);
      s.push_back(':');
      // Shortest round-trip form: "1" for ones, "0.25" rather than "0.250000".
      auto res = std::to_chars(buf, buf + sizeof(buf), X.value(k));
      s.append(buf, res.ptr);
    }
    s.push_back('\n');
  }
}

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};

}  // namespace

void write_xc_file(const std::string& path, const CsrView& X, const CsrView& Y, const XcWriteOptions& opts) {
  if (X.rows != Y.rows)
    throw std::invalid_argument("X has " + std::to_string(X.rows) + " rows but Y has " + std::to_string(Y.rows));
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
  if (!f) throw std::runtime_error(path + ": cannot open for writing: " + std::strerror(errno));
  auto put = [&](const std::string& s) {
    if (!s.empty() && std::fwrite(s.data(), 1, s.size(), f.get()) != s.size())
      throw std::runtime_error(path + ": write failed: " + std::strerror(errno));
  };
  if (opts.header) {
    std::string h;
    append_int(h, X.rows);
    h.push_back(' ');
    append_int(h, X.cols);
    h.push_back(' ');
    append_int(h, Y.cols);
    h.push_back('\n');
    put(h);
  }
  // Rows are formatted in parallel a round at a time and written in order, so
  // memory stays bounded by one round however large the file is.
  const int threads = resolve_threads(opts.threads);
  constexpr int64_t kBlockRows = 2048;
  const int64_t blocks_per_round = int64_t{threads} * 4;
  std::vector<std::string> bufs(static_cast<size_t>(blocks_per_round));
  for (int64_t start = 0; start < X.rows; start += kBlockRows * blocks_per_round) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t b = 0; b < blocks_per_round; ++b) {
      std::string& s = bufs[static_cast<size_t>(b)];
      s.clear();
      const int64_t r0 = std::min(X.rows, start + b * kBlockRows);
      const int64_t r1 = std::min(X.rows, r0 + kBlockRows);
      format_rows(X, Y, r0, r1, s);
    }
    for (const std::string& s : bufs) put(s);
  }
  if (std::fflush(f.get()) != 0) throw std::runtime_error(path + ": write failed: " + std::strerror(errno));
  std::FILE* raw = f.release();
  if (std::fclose(raw) != 0) throw std::runtime_error(path + ": close failed: " + std::strerror(errno));
}

}  // namespace xmc
