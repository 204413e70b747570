#include "core/io/xc_reader.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/common/errors.h"
#include "core/common/parallel.h"
#include "core/io/text_scan.h"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define XMC_HAVE_MMAP 1
#else
#include <fstream>
#endif

namespace xmc {
namespace {

using io::is_blank;
using io::parse_uint;
using io::show_token;
using io::token_end;

// Column ids are int32 and scipy needs the column count to fit int32 as well.
constexpr int64_t kMaxId = std::numeric_limits<int32_t>::max() - 1;

// An id range limit and the words that explain where it came from.
struct Limit {
  int64_t bound = kMaxId + 1;  // ids must be < bound
  std::string source;          // empty: no limit but the int32 one
};

struct Chunk {
  const char* begin = nullptr;
  const char* end = nullptr;
  std::vector<int64_t> x_ptr{0}, y_ptr{0};  // per-row offsets local to the chunk
  std::vector<int32_t> x_idx, y_idx;
  std::vector<float> x_val;
  int64_t lines = 0;
  int64_t max_feature = -1, max_label = -1;
  bool failed = false;
  int64_t error_line = 0;  // 0-based within the chunk
  std::string error;
};

std::string out_of_range(const char* what, int64_t id, const Limit& lim) {
  if (lim.source.empty())
    return std::string(what) + " id " + std::to_string(id) + " does not fit a 32-bit column index";
  return std::string(what) + " id " + std::to_string(id) + " is outside the range [0, " +
         std::to_string(lim.bound) + ") set by " + lim.source;
}

bool is_digit(char ch) { return static_cast<unsigned char>(ch) - '0' <= 9u; }

// End of the run of ASCII digits starting at p.
const char* digits_end(const char* p, const char* e) {
  while (p < e && is_digit(*p)) ++p;
  return p;
}

// Only called on the error path: says "does not fit" for an id whose digits are
// fine but too many, instead of the grammar message.
std::string too_large(const char* what, const char* b, const char* e) {
  return std::string(what) + " id " + show_token(b, e) + " does not fit a 32-bit column index (ids are at most " +
         std::to_string(kMaxId) + ")";
}

// Sorts a row's ids (and values, when given) if they are not already increasing,
// then returns the first repeated id or -1.
int64_t sort_and_find_repeat(int32_t* idx, float* val, size_t n, std::vector<std::pair<int32_t, float>>& tmp) {
  bool sorted = true;
  for (size_t k = 1; k < n; ++k)
    if (idx[k] <= idx[k - 1]) { sorted = false; break; }
  if (sorted) return -1;
  if (val) {
    tmp.resize(n);
    for (size_t k = 0; k < n; ++k) tmp[k] = {idx[k], val[k]};
    std::sort(tmp.begin(), tmp.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t k = 0; k < n; ++k) { idx[k] = tmp[k].first; val[k] = tmp[k].second; }
  } else {
    std::sort(idx, idx + n);
  }
  for (size_t k = 1; k < n; ++k)
    if (idx[k] == idx[k - 1]) return idx[k];
  return -1;
}

// Parses one line (without its newline) into the chunk; on failure sets `err`.
bool parse_line(const char* p, const char* e, const Limit& flim, const Limit& llim, int64_t max_labels,
                Chunk& c, std::vector<std::pair<int32_t, float>>& tmp, std::string& err) {
  const size_t x0 = c.x_idx.size(), y0 = c.y_idx.size();
  // The label field is the first token unless the line starts blank or the
  // first token is already a feature (it holds a ':').
  if (p < e && !is_blank(*p)) {
    const char* te = token_end(p, e);
    if (!std::memchr(p, ':', static_cast<size_t>(te - p))) {
      const char* q = p;
      while (true) {
        int64_t v = 0;
        const char* n = parse_uint(q, te, kMaxId, v);
        if (!n || (n < te && *n != ',')) {
          const char* de = digits_end(q, te);
          if (!n && de > q && (de == te || *de == ',')) {
            err = too_large("label", q, de);
            return false;
          }
          err = "expected the label field: comma-separated non-negative integer label ids, found " +
                show_token(p, te);
          return false;
        }
        if (v >= llim.bound) { err = out_of_range("label", v, llim); return false; }
        if (static_cast<int64_t>(c.y_idx.size() - y0) >= max_labels) {
          err = "more than " + std::to_string(max_labels) +
                " labels on this line (max_labels_per_doc); raise the limit with --max-labels-per-doc or "
                "XMC_MAX_LABELS_PER_DOC if the file is genuine";
          return false;
        }
        c.y_idx.push_back(static_cast<int32_t>(v));
        if (v > c.max_label) c.max_label = v;
        if (n == te) break;
        q = n + 1;  // a trailing comma leaves no digits here and fails above
      }
      p = te;
    }
  }
  while (true) {
    while (p < e && is_blank(*p)) ++p;
    if (p == e) break;
    const char* tok = p;
    int64_t id = 0;
    const char* n = parse_uint(p, e, kMaxId, id);
    if (!n || n == e || *n != ':') {
      const char* de = digits_end(tok, e);
      if (!n && de > tok && de < e && *de == ':') {
        err = too_large("feature", tok, de);
        return false;
      }
      err = "expected a feature 'id:value' with a non-negative integer id, found " +
            show_token(tok, token_end(tok, e));
      return false;
    }
    ++n;
    if (n + 1 < e && *n == '+' && *(n + 1) != '-' && *(n + 1) != '+') ++n;  // from_chars rejects '+'
    float v = 0.f;
    std::from_chars_result r{n, std::errc()};
    if (const char* q = io::parse_float_fast(n, e, v))
      r.ptr = q;
    else
      r = std::from_chars(n, e, v);
    // Syntax first: "1e99x" is a bad token, not an out-of-range number.
    if (r.ec == std::errc::invalid_argument || (r.ptr < e && !is_blank(*r.ptr))) {
      err = "expected a number after ':' in feature 'id:value', found " + show_token(tok, token_end(tok, e));
      return false;
    }
    if (r.ec != std::errc()) {
      err = "expected a feature value within the float32 range, found " + show_token(tok, token_end(tok, e));
      return false;
    }
    if (!std::isfinite(v)) {
      err = "expected a finite feature value, found " + show_token(tok, r.ptr);
      return false;
    }
    if (id >= flim.bound) { err = out_of_range("feature", id, flim); return false; }
    c.x_idx.push_back(static_cast<int32_t>(id));
    c.x_val.push_back(v);
    if (id > c.max_feature) c.max_feature = id;
    p = r.ptr;
  }
  int64_t rep = sort_and_find_repeat(c.x_idx.data() + x0, c.x_val.data() + x0, c.x_idx.size() - x0, tmp);
  if (rep >= 0) { err = "feature id " + std::to_string(rep) + " appears twice on this line"; return false; }
  rep = sort_and_find_repeat(c.y_idx.data() + y0, nullptr, c.y_idx.size() - y0, tmp);
  if (rep >= 0) { err = "label id " + std::to_string(rep) + " appears twice on this line"; return false; }
  c.x_ptr.push_back(static_cast<int64_t>(c.x_idx.size()));
  c.y_ptr.push_back(static_cast<int64_t>(c.y_idx.size()));
  return true;
}

std::string line_too_long(int64_t max_line) {
  return "the line is longer than " + std::to_string(max_line) +
         " bytes (max_line_bytes); raise the limit with --max-line-bytes or XMC_MAX_LINE_BYTES if the file "
         "is genuine";
}

void parse_chunk(Chunk& c, const Limit& flim, const Limit& llim, int64_t max_line, int64_t max_labels) {
  std::vector<std::pair<int32_t, float>> tmp;
  const size_t guess = static_cast<size_t>(c.end - c.begin) / 12;
  c.x_idx.reserve(guess);
  c.x_val.reserve(guess);
  const char* p = c.begin;
  while (p < c.end) {
    // The newline search stops past the limit: a line of gigabytes costs no
    // more than one of max_line bytes before it is refused.
    const int64_t room = c.end - p;
    const int64_t scan = std::min(room, max_line + 2);
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(scan)));
    const char* le = nl ? nl : (room > scan ? p + scan : c.end);
    const char* content_end = (le > p && le[-1] == '\r') ? le - 1 : le;
    if (content_end - p > max_line) {
      c.failed = true;
      c.error_line = c.lines;
      c.error = line_too_long(max_line);
      return;
    }
    if (!parse_line(p, content_end, flim, llim, max_labels, c, tmp, c.error)) {
      c.failed = true;
      c.error_line = c.lines;
      return;
    }
    ++c.lines;
    p = nl ? nl + 1 : c.end;
  }
}

bool whitespace_only(const char* data, size_t size) {
  for (size_t i = 0; i < size; ++i)
    if (!is_blank(data[i]) && data[i] != '\n' && data[i] != '\r') return false;
  return true;
}

// Reads "N D L" when the first line is one. A first line of several tokens none
// of which holds a ':' cannot be a document, so it must be a well-formed header.
bool parse_header(const char* b, const char* e, const std::string& name, int64_t hdr[3]) {
  std::vector<std::pair<const char*, const char*>> toks;
  for (const char* p = b; p < e;) {
    while (p < e && is_blank(*p)) ++p;
    if (p == e) break;
    const char* t = token_end(p, e);
    toks.emplace_back(p, t);
    p = t;
  }
  if (toks.size() < 2) return false;
  for (auto& t : toks)
    if (std::memchr(t.first, ':', static_cast<size_t>(t.second - t.first))) return false;
  bool ok = toks.size() == 3;
  for (size_t i = 0; ok && i < 3; ++i) {
    const char* n = parse_uint(toks[i].first, toks[i].second, std::numeric_limits<int64_t>::max() / 10, hdr[i]);
    ok = n == toks[i].second;
  }
  if (!ok)
    throw ParseError(name, 1,
                     "expected a header 'N D L' of three non-negative integers, found " + show_token(b, e));
  if (hdr[1] > kMaxId + 1 || hdr[2] > kMaxId + 1)
    throw ParseError(name, 1, "header dimensions D and L must fit a 32-bit column index, found " +
                                  show_token(b, e));
  return true;
}

void concatenate(std::vector<Chunk>& chunks, int threads, XcData& out) {
  const size_t k = chunks.size();
  std::vector<int64_t> row_off(k + 1, 0), x_off(k + 1, 0), y_off(k + 1, 0);
  for (size_t i = 0; i < k; ++i) {
    row_off[i + 1] = row_off[i] + chunks[i].lines;
    x_off[i + 1] = x_off[i] + static_cast<int64_t>(chunks[i].x_idx.size());
    y_off[i + 1] = y_off[i] + static_cast<int64_t>(chunks[i].y_idx.size());
  }
  CsrMatrix& X = out.X;
  CsrMatrix& Y = out.Y;
  X.rows = Y.rows = row_off[k];
  X.indptr.assign(static_cast<size_t>(X.rows + 1), 0);
  Y.indptr.assign(static_cast<size_t>(Y.rows + 1), 0);
  X.indices.resize(static_cast<size_t>(x_off[k]));
  X.data.resize(static_cast<size_t>(x_off[k]));
  Y.indices.resize(static_cast<size_t>(y_off[k]));
  Y.data.assign(static_cast<size_t>(y_off[k]), 1.0f);
  const int64_t nk = static_cast<int64_t>(k);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t i = 0; i < nk; ++i) {
    Chunk& c = chunks[static_cast<size_t>(i)];
    for (int64_t r = 0; r < c.lines; ++r) {
      X.indptr[static_cast<size_t>(row_off[i] + r + 1)] = x_off[i] + c.x_ptr[static_cast<size_t>(r + 1)];
      Y.indptr[static_cast<size_t>(row_off[i] + r + 1)] = y_off[i] + c.y_ptr[static_cast<size_t>(r + 1)];
    }
    if (!c.x_idx.empty()) {
      std::memcpy(X.indices.data() + x_off[i], c.x_idx.data(), c.x_idx.size() * sizeof(int32_t));
      std::memcpy(X.data.data() + x_off[i], c.x_val.data(), c.x_val.size() * sizeof(float));
    }
    if (!c.y_idx.empty())
      std::memcpy(Y.indices.data() + y_off[i], c.y_idx.data(), c.y_idx.size() * sizeof(int32_t));
    c = Chunk();  // give the memory back before the next chunk's copy
  }
}

}  // namespace

XcData parse_xc(const char* data, size_t size, const std::string& name, const XcReadOptions& opts) {
  if (size >= 3 && std::memcmp(data, "\xEF\xBB\xBF", 3) == 0) {  // a BOM some editors write: not content
    data += 3;
    size -= 3;
  }
  // Clamped so that max_line + 2 below cannot overflow.
  const int64_t max_line = std::clamp<int64_t>(opts.max_line_bytes, 0, std::numeric_limits<int64_t>::max() / 4);
  const int64_t max_labels = std::max<int64_t>(0, opts.max_labels_per_doc);
  if (size == 0 || whitespace_only(data, size))
    throw ParseError(name, 0, "the file is empty; expected an optional header 'N D L' and one document per line");
  const char* end = data + size;
  const size_t first_scan = std::min<size_t>(size, static_cast<size_t>(max_line) + 2);
  const char* nl = static_cast<const char*>(std::memchr(data, '\n', first_scan));
  const char* first_end = nl ? nl : (size > first_scan ? data + first_scan : end);
  const char* first_content = (first_end > data && first_end[-1] == '\r') ? first_end - 1 : first_end;
  if (first_content - data > max_line) throw ParseError(name, 1, line_too_long(max_line));

  XcData out;
  int64_t hdr[3] = {-1, -1, -1};
  out.had_header = parse_header(data, first_content, name, hdr);
  const char* body = out.had_header ? (nl ? nl + 1 : end) : data;

  Limit flim, llim;
  if (out.had_header) {
    flim = {hdr[1], "the header's D=" + std::to_string(hdr[1])};
    llim = {hdr[2], "the header's L=" + std::to_string(hdr[2])};
  }
  // A header that disagrees with the caller's dimensions (a test file against
  // its model) means another feature or label space, even when every id fits.
  if (out.had_header && opts.n_features >= 0 && hdr[1] != opts.n_features)
    throw ParseError(name, 1, "the header says D=" + std::to_string(hdr[1]) + " features but n_features=" +
                                  std::to_string(opts.n_features) +
                                  " was expected (e.g. the model's training dimension): the file belongs to "
                                  "another feature space; write it with the training file's D");
  if (out.had_header && opts.n_labels >= 0 && hdr[2] != opts.n_labels)
    throw ParseError(name, 1, "the header says L=" + std::to_string(hdr[2]) + " labels but n_labels=" +
                                  std::to_string(opts.n_labels) +
                                  " was expected: the file belongs to another label space; write it with the "
                                  "training file's L");
  if (opts.n_features >= 0 && opts.n_features < flim.bound)
    flim = {opts.n_features, "n_features=" + std::to_string(opts.n_features) + " given by the caller"};
  if (opts.n_labels >= 0 && opts.n_labels < llim.bound)
    llim = {opts.n_labels, "n_labels=" + std::to_string(opts.n_labels) + " given by the caller"};

  const int threads = resolve_threads(opts.threads);
  const int64_t body_bytes = end - body;
  const int64_t min_chunk = std::max<int64_t>(1, opts.min_chunk_bytes);
  const int64_t n_chunks =
      std::max<int64_t>(1, std::min<int64_t>(int64_t{threads} * 8, body_bytes / min_chunk));
  std::vector<Chunk> chunks(static_cast<size_t>(n_chunks));
  const char* prev = body;
  for (int64_t i = 0; i < n_chunks; ++i) {
    Chunk& c = chunks[static_cast<size_t>(i)];
    c.begin = prev;
    const char* target = (i + 1 == n_chunks) ? end : body + body_bytes * (i + 1) / n_chunks;
    if (target < prev) target = prev;
    if (target < end && target > body && target[-1] != '\n') {
      const char* cut = static_cast<const char*>(std::memchr(target, '\n', static_cast<size_t>(end - target)));
      target = cut ? cut + 1 : end;
    }
    c.end = target;
    prev = target;
  }

#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t i = 0; i < n_chunks; ++i) parse_chunk(chunks[static_cast<size_t>(i)], flim, llim, max_line, max_labels);

  int64_t line_base = out.had_header ? 1 : 0;
  for (const Chunk& c : chunks) {
    if (c.failed) throw ParseError(name, line_base + c.error_line + 1, c.error);
    line_base += c.lines;
  }
  int64_t max_f = -1, max_l = -1, n_docs = 0;
  for (const Chunk& c : chunks) {
    max_f = std::max(max_f, c.max_feature);
    max_l = std::max(max_l, c.max_label);
    n_docs += c.lines;
  }
  if (out.had_header && n_docs != hdr[0])
    throw ParseError(name, 1, "the header promises " + std::to_string(hdr[0]) + " documents, found " +
                                  std::to_string(n_docs) + " document lines");

  concatenate(chunks, threads, out);
  out.X.cols = opts.n_features >= 0 ? opts.n_features : (out.had_header ? hdr[1] : max_f + 1);
  out.Y.cols = opts.n_labels >= 0 ? opts.n_labels : (out.had_header ? hdr[2] : max_l + 1);
  return out;
}

XcData read_xc_file(const std::string& path, const XcReadOptions& opts) {
#ifdef XMC_HAVE_MMAP
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw std::runtime_error(path + ": cannot stat: " + std::strerror(e));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return parse_xc(nullptr, 0, path, opts);
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) throw std::runtime_error(path + ": cannot map: " + std::strerror(errno));
  ::madvise(map, size, MADV_WILLNEED);  // chunks are read in parallel, not front to back
  struct Unmap {
    void* p;
    size_t n;
    ~Unmap() { ::munmap(p, n); }
  } guard{map, size};
  return parse_xc(static_cast<const char*>(map), size, path, opts);
#else
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::string buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_xc(buf.data(), buf.size(), path, opts);
#endif
}

}  // namespace xmc
