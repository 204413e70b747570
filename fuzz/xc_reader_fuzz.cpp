// Fuzz driver for the native XC reader (xmc::parse_xc and xmc::XcChunkReader).
//
// Built two ways by fuzz/build_sanitized.sh:
//  * clang -fsanitize=fuzzer,address,undefined: a libFuzzer target
//    (LLVMFuzzerTestOneInput below; libFuzzer supplies main()).
//  * -DXMC_FUZZ_STANDALONE with g++ and ASan/UBSan, for machines without
//    clang: a hand-written mutation loop over a seed corpus (main() below).
//
// Besides "no crash, no sanitizer report", each run checks what a caller relies
// on: the only exception is ParseError with a 1-based line inside the input (0
// for whole-file errors), and an accepted input yields well-formed CSR (indptr
// non-decreasing from 0 to nnz, ids strictly increasing per row and < cols,
// finite values, Y all ones, as many rows in X as in Y), and that the chunked
// reader fails at the same line or reads the same documents in full chunks.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "core/common/errors.h"
#include "core/io/xc_reader.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "xc_reader_fuzz: invariant broken: %s\n", what);
  std::abort();
}

void check_csr(const xmc::CsrMatrix& m, bool ones) {
  if (m.rows < 0 || m.cols < 0) fail("negative shape");
  if (m.indptr.size() != static_cast<size_t>(m.rows + 1)) fail("indptr length != rows + 1");
  if (m.indptr[0] != 0) fail("indptr[0] != 0");
  if (m.indptr.back() != static_cast<int64_t>(m.indices.size())) fail("indptr[rows] != nnz");
  if (m.data.size() != m.indices.size()) fail("data length != indices length");
  for (int64_t r = 0; r < m.rows; ++r) {
    const int64_t b = m.indptr[static_cast<size_t>(r)], e = m.indptr[static_cast<size_t>(r + 1)];
    if (e < b) fail("indptr decreases");
    for (int64_t k = b; k < e; ++k) {
      const int32_t c = m.indices[static_cast<size_t>(k)];
      if (c < 0 || c >= m.cols) fail("column id outside [0, cols)");
      if (k > b && c <= m.indices[static_cast<size_t>(k - 1)]) fail("column ids not strictly increasing");
      const float v = m.data[static_cast<size_t>(k)];
      if (!std::isfinite(v)) fail("non-finite value");
      if (ones && v != 1.0f) fail("label value != 1");
    }
  }
}

size_t count_lines(const uint8_t* data, size_t size) {
  size_t n = 0;
  for (size_t i = 0; i < size; ++i) n += data[i] == '\n';
  return n + (size && data[size - 1] != '\n');
}

// What one read of the input gave: its shape, or the line of its ParseError.
struct Outcome {
  bool ok = false;
  int64_t error_line = -1, rows = 0, x_nnz = 0, y_nnz = 0, x_cols = -1, y_cols = -1;
};

template <typename Read>
Outcome outcome(const uint8_t* data, size_t size, Read read, bool check = true) {
  Outcome o;
  try {
    xmc::XcData d = read();
    if (check) {
      check_csr(d.X, false);
      check_csr(d.Y, true);
    }
    if (d.X.rows != d.Y.rows) fail("X and Y row counts differ");
    if (static_cast<size_t>(d.X.rows) > count_lines(data, size)) fail("more rows than lines");
    o.ok = true;
    o.rows = d.X.rows;
    o.x_nnz = static_cast<int64_t>(d.X.indices.size());
    o.y_nnz = static_cast<int64_t>(d.Y.indices.size());
    o.x_cols = d.X.cols;
    o.y_cols = d.Y.cols;
  } catch (const xmc::ParseError& e) {
    if (e.file() != "fuzz") fail("ParseError names the wrong file");
    if (e.line() < 0 || static_cast<size_t>(e.line()) > count_lines(data, size)) fail("ParseError line outside the input");
    if (std::strncmp(e.what(), "fuzz", 4) != 0) fail("ParseError message does not start with the file name");
    o.error_line = e.line();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    fail("exception other than ParseError");
  }
  return o;
}

}  // namespace

// The first two bytes choose reader options (chunk size, caller-given
// dimensions) so one corpus covers the chunk-boundary and range-limit paths;
// the rest is the file. The input is copied into an exactly sized heap buffer
// so ASan flags any read past its end.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t o0 = data[0], o1 = data[1];
  data += 2;
  size -= 2;
  xmc::XcReadOptions opts;
  opts.threads = 1 + (o0 & 3);
  static const int64_t kChunks[4] = {1, 7, 64, 1 << 20};
  opts.min_chunk_bytes = kChunks[(o0 >> 2) & 3];
  if (o0 & 0x10) opts.n_features = o1 & 0x0f;
  if (o0 & 0x20) opts.n_labels = o1 >> 4;
  if (o0 & 0x40) opts.n_features = (o0 & 0x80) ? 2147483647 : 0;

  std::vector<char> buf(data, data + size);
  const char* p = size ? buf.data() : nullptr;
  const Outcome whole = outcome(data, size, [&] { return xmc::parse_xc(p, size, "fuzz", opts); });
  if (whole.ok && opts.n_features >= 0 && whole.x_cols != opts.n_features) fail("cols != n_features");
  if (whole.ok && opts.n_labels >= 0 && whole.y_cols != opts.n_labels) fail("cols != n_labels");
  // The chunked reader must agree with the whole-file parse: the same error line, or the
  // same documents split into full chunks.
  const int64_t chunk_docs = 1 + static_cast<int64_t>(size % 3);
  const Outcome chunked = outcome(data, size, [&] {
    xmc::XcChunkReader reader(p, size, "fuzz", opts);
    xmc::XcData all;
    all.X.cols = all.Y.cols = -1;
    while (true) {
      xmc::XcData c = reader.next(chunk_docs);
      check_csr(c.X, false);
      check_csr(c.Y, true);
      if (c.X.rows == 0) break;
      if (c.X.rows > chunk_docs) fail("a chunk holds more documents than asked for");
      if (all.X.rows % chunk_docs != 0) fail("a chunk other than the last is not full");
      all.X.rows += c.X.rows;
      all.Y.rows += c.Y.rows;
      all.X.indices.insert(all.X.indices.end(), c.X.indices.begin(), c.X.indices.end());
      all.Y.indices.insert(all.Y.indices.end(), c.Y.indices.begin(), c.Y.indices.end());
      if (opts.n_features >= 0 || c.had_header) all.X.cols = c.X.cols;
    }
    all.X.indptr.assign(static_cast<size_t>(all.X.rows + 1), 0);  // only counted below
    all.X.indptr.back() = static_cast<int64_t>(all.X.indices.size());
    all.Y.indptr.assign(static_cast<size_t>(all.Y.rows + 1), 0);
    all.Y.indptr.back() = static_cast<int64_t>(all.Y.indices.size());
    return all;
  }, /*check=*/false);
  if (whole.ok != chunked.ok) fail("the chunked reader and the whole-file parse disagree on failing");
  if (!whole.ok && whole.error_line != chunked.error_line) fail("the chunked reader fails at another line");
  if (whole.ok && (whole.rows != chunked.rows || whole.x_nnz != chunked.x_nnz || whole.y_nnz != chunked.y_nnz))
    fail("the chunked reader reads other documents");
  if (whole.ok && chunked.x_cols >= 0 && chunked.x_cols != whole.x_cols) fail("a chunk has another feature count");
  return 0;
}

#ifdef XMC_FUZZ_STANDALONE
// Minimal libFuzzer stand-in: seeds from argv, then `runs` random byte edits
// (replace / insert / delete / splice a token from the grammar's alphabet).
#include <chrono>
#include <fstream>
#include <iterator>
#include <random>

int main(int argc, char** argv) {
  long long runs = 1000000;
  std::vector<std::vector<uint8_t>> corpus;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "-runs=", 6) == 0) { runs = std::atoll(argv[i] + 6); continue; }
    std::ifstream in(argv[i], std::ios::binary);
    corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (corpus.empty()) corpus.push_back({0, 0, '1', ' ', '0', ':', '1', '\n'});
  static const char* kPieces[] = {"0", "1", "9", ":", ",", " ", "\t", "\n", "\r\n", ".", "-", "+", "e", "E",
                                  "inf", "nan", "1e39", "1e-46", "2147483647", "2147483646", "99999999999",
                                  "\xff", "0x1p3", "4 5 6\n"};
  std::mt19937_64 rng(12345);
  auto t0 = std::chrono::steady_clock::now();
  for (long long r = 0; r < runs; ++r) {
    std::vector<uint8_t> in = corpus[rng() % corpus.size()];
    const int edits = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < edits; ++k) {
      const size_t pos = in.empty() ? 0 : rng() % (in.size() + 1);
      switch (rng() % 4) {
        case 0: if (pos < in.size()) in[pos] = static_cast<uint8_t>(rng()); break;
        case 1: if (pos < in.size()) in.erase(in.begin() + static_cast<long>(pos)); break;
        case 2: {
          const char* s = kPieces[rng() % (sizeof kPieces / sizeof *kPieces)];
          in.insert(in.begin() + static_cast<long>(pos), s, s + std::strlen(s));
          break;
        }
        default: {  // splice a slice of another seed
          const auto& o = corpus[rng() % corpus.size()];
          if (o.empty()) break;
          const size_t a = rng() % o.size(), len = 1 + rng() % std::min<size_t>(64, o.size() - a);
          in.insert(in.begin() + static_cast<long>(pos), o.begin() + static_cast<long>(a),
                    o.begin() + static_cast<long>(a + len));
        }
      }
    }
    LLVMFuzzerTestOneInput(in.data(), in.size());
    if ((r + 1) % 200000 == 0 || r + 1 == runs) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "#%lld DONE-SO-FAR exec/s: %.0f\n", r + 1, (r + 1) / s);
    }
  }
  return 0;
}
#endif
