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

// What the file's start decides for every document: where documents begin, the header
// and the id limits. Shared by the whole-file parse and the chunked reader, so both
// apply one set of rules.
struct Prologue {
  const char* body = nullptr;
  const char* end = nullptr;
  bool had_header = false;
  int64_t hdr[3] = {-1, -1, -1};
  Limit flim, llim;
  int64_t max_line = 0, max_labels = 0;
  int64_t first_body_line = 1;  // file line number of the first document line
};

Prologue read_prologue(const char* data, size_t size, const std::string& name, const XcReadOptions& opts) {
  if (size >= 3 && std::memcmp(data, "\xEF\xBB\xBF", 3) == 0) {  // a BOM some editors write: not content
    data += 3;
    size -= 3;
  }
  Prologue pro;
  // Clamped so that max_line + 2 below cannot overflow.
  pro.max_line = std::clamp<int64_t>(opts.max_line_bytes, 0, std::numeric_limits<int64_t>::max() / 4);
  pro.max_labels = std::max<int64_t>(0, opts.max_labels_per_doc);
  if (size == 0 || whitespace_only(data, size))
    throw ParseError(name, 0, "the file is empty; expected an optional header 'N D L' and one document per line");
  const char* end = data + size;
  const size_t first_scan = std::min<size_t>(size, static_cast<size_t>(pro.max_line) + 2);
  const char* nl = static_cast<const char*>(std::memchr(data, '\n', first_scan));
  const char* first_end = nl ? nl : (size > first_scan ? data + first_scan : end);
  const char* first_content = (first_end > data && first_end[-1] == '\r') ? first_end - 1 : first_end;
  if (first_content - data > pro.max_line) throw ParseError(name, 1, line_too_long(pro.max_line));

  pro.had_header = parse_header(data, first_content, name, pro.hdr);
  pro.body = pro.had_header ? (nl ? nl + 1 : end) : data;
  pro.end = end;
  pro.first_body_line = pro.had_header ? 2 : 1;
  const int64_t* hdr = pro.hdr;
  if (pro.had_header) {
    pro.flim = {hdr[1], "the header's D=" + std::to_string(hdr[1])};
    pro.llim = {hdr[2], "the header's L=" + std::to_string(hdr[2])};
  }
  // A header that disagrees with the caller's dimensions (a test file against
  // its model) means another feature or label space, even when every id fits.
  if (pro.had_header && opts.n_features >= 0 && hdr[1] != opts.n_features)
    throw ParseError(name, 1, "the header says D=" + std::to_string(hdr[1]) + " features but n_features=" +
                                  std::to_string(opts.n_features) +
                                  " was expected (e.g. the model's training dimension): the file belongs to "
                                  "another feature space; write it with the training file's D");
  if (pro.had_header && opts.n_labels >= 0 && hdr[2] != opts.n_labels)
    throw ParseError(name, 1, "the header says L=" + std::to_string(hdr[2]) + " labels but n_labels=" +
                                  std::to_string(opts.n_labels) +
                                  " was expected: the file belongs to another label space; write it with the "
                                  "training file's L");
  if (opts.n_features >= 0 && opts.n_features < pro.flim.bound)
    pro.flim = {opts.n_features, "n_features=" + std::to_string(opts.n_features) + " given by the caller"};
  if (opts.n_labels >= 0 && opts.n_labels < pro.llim.bound)
    pro.llim = {opts.n_labels, "n_labels=" + std::to_string(opts.n_labels) + " given by the caller"};
  return pro;
}

// Parses the whole lines in [begin, end) in parallel into out.X/out.Y; the first of them is
// file line `first_line`. The first bad line, in file order, is the error.
void parse_lines(const char* begin, const char* end, int64_t first_line, const Prologue& pro,
                 const std::string& name, const XcReadOptions& opts, XcData& out, int64_t& max_f, int64_t& max_l) {
  const int threads = resolve_threads(opts.threads);
  const int64_t bytes = end - begin;
  const int64_t min_chunk = std::max<int64_t>(1, opts.min_chunk_bytes);
  const int64_t n_chunks = std::max<int64_t>(1, std::min<int64_t>(int64_t{threads} * 8, bytes / min_chunk));
  std::vector<Chunk> chunks(static_cast<size_t>(n_chunks));
  const char* prev = begin;
  for (int64_t i = 0; i < n_chunks; ++i) {
    Chunk& c = chunks[static_cast<size_t>(i)];
    c.begin = prev;
    const char* target = (i + 1 == n_chunks) ? end : begin + bytes * (i + 1) / n_chunks;
    if (target < prev) target = prev;
    if (target < end && target > begin && target[-1] != '\n') {
      const char* cut = static_cast<const char*>(std::memchr(target, '\n', static_cast<size_t>(end - target)));
      target = cut ? cut + 1 : end;
    }
    c.end = target;
    prev = target;
  }

#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t i = 0; i < n_chunks; ++i)
    parse_chunk(chunks[static_cast<size_t>(i)], pro.flim, pro.llim, pro.max_line, pro.max_labels);

  int64_t line = first_line;
  for (const Chunk& c : chunks) {
    if (c.failed) throw ParseError(name, line + c.error_line, c.error);
    line += c.lines;
  }
  max_f = max_l = -1;
  for (const Chunk& c : chunks) {
    max_f = std::max(max_f, c.max_feature);
    max_l = std::max(max_l, c.max_label);
  }
  concatenate(chunks, threads, out);
}

void check_document_count(const Prologue& pro, int64_t n_docs, const std::string& name) {
  if (pro.had_header && n_docs != pro.hdr[0])
    throw ParseError(name, 1, "the header promises " + std::to_string(pro.hdr[0]) + " documents, found " +
                                  std::to_string(n_docs) + " document lines");
}

void set_columns(const Prologue& pro, const XcReadOptions& opts, int64_t max_f, int64_t max_l, XcData& out) {
  out.had_header = pro.had_header;
  out.X.cols = opts.n_features >= 0 ? opts.n_features : (pro.had_header ? pro.hdr[1] : max_f + 1);
  out.Y.cols = opts.n_labels >= 0 ? opts.n_labels : (pro.had_header ? pro.hdr[2] : max_l + 1);
}

// A read-only view of a whole file: mapped where the system can, else read into memory.
class FileBytes {
 public:
  explicit FileBytes(const std::string& path) {
#ifdef XMC_HAVE_MMAP
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      throw std::runtime_error(path + ": cannot stat: " + std::strerror(e));
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (map_ == MAP_FAILED) {
        int e = errno;
        ::close(fd);
        throw std::runtime_error(path + ": cannot map: " + std::strerror(e));
      }
      data_ = static_cast<const char*>(map_);
    }
    ::close(fd);
#else
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open");
    buffer_.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    data_ = buffer_.data();
    size_ = buffer_.size();
#endif
  }
  ~FileBytes() {
#ifdef XMC_HAVE_MMAP
    if (map_) ::munmap(map_, size_);
#endif
  }
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;

  const char* data() const { return data_; }
  size_t size() const { return size_; }

  // Chunks are read in parallel, not front to back: ask for the whole file ahead.
  void will_need() const {
#ifdef XMC_HAVE_MMAP
    if (map_) ::madvise(map_, size_, MADV_WILLNEED);
#endif
  }

  // Gives back the pages wholly before `upto`: a chunked reader's memory stays one chunk,
  // not the part of the file read so far.
  void release_before(const char* upto) {
#ifdef XMC_HAVE_MMAP
    if (!map_) return;
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t bytes = static_cast<size_t>(upto - data_) / page * page;
    if (bytes > released_) ::madvise(static_cast<char*>(map_) + released_, bytes - released_, MADV_DONTNEED);
    released_ = std::max(released_, bytes);
#else
    (void)upto;
#endif
  }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
#ifdef XMC_HAVE_MMAP
  void* map_ = nullptr;
  size_t released_ = 0;  // bytes at the start already given back
#else
  std::string buffer_;
#endif
};

}  // namespace

XcData parse_xc(const char* data, size_t size, const std::string& name, const XcReadOptions& opts) {
  const Prologue pro = read_prologue(data, size, name, opts);
  XcData out;
  int64_t max_f = -1, max_l = -1;
  parse_lines(pro.body, pro.end, pro.first_body_line, pro, name, opts, out, max_f, max_l);
  check_document_count(pro, out.X.rows, name);
  set_columns(pro, opts, max_f, max_l, out);
  return out;
}

XcData read_xc_file(const std::string& path, const XcReadOptions& opts) {
  FileBytes file(path);
  file.will_need();
  return parse_xc(file.data(), file.size(), path, opts);
}

struct XcChunkReader::State {
  std::string name;
  XcReadOptions opts;
  std::unique_ptr<FileBytes> file;  // null when reading the caller's bytes
  Prologue pro;
  const char* cursor = nullptr;
  int64_t next_line = 1;
  int64_t n_docs = 0;

  State(const char* data, size_t size, std::string n, const XcReadOptions& o, std::unique_ptr<FileBytes> f)
      : name(std::move(n)), opts(o), file(std::move(f)) {
    pro = read_prologue(data, size, name, opts);
    cursor = pro.body;
    next_line = pro.first_body_line;
  }

  // End of the next `max_docs` lines from the cursor. A line without a newline within the
  // length limit ends the range there, so parse_lines refuses it at its own line number
  // without this scan reading a hostile line of gigabytes.
  const char* range_end(int64_t max_docs) const {
    const char* p = cursor;
    for (int64_t k = 0; k < max_docs && p < pro.end; ++k) {
      const size_t room = static_cast<size_t>(pro.end - p);
      const size_t scan = std::min<size_t>(room, static_cast<size_t>(pro.max_line) + 2);
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', scan));
      if (!nl) return room > scan ? p + scan : pro.end;
      p = nl + 1;
    }
    return p;
  }
};

XcChunkReader::XcChunkReader(const std::string& path, const XcReadOptions& opts) {
  auto file = std::make_unique<FileBytes>(path);
  const char* data = file->data();
  const size_t size = file->size();
  state_ = std::make_unique<State>(data, size, path, opts, std::move(file));
}

XcChunkReader::XcChunkReader(const char* data, size_t size, const std::string& name, const XcReadOptions& opts)
    : state_(std::make_unique<State>(data, size, name, opts, nullptr)) {}

XcChunkReader::~XcChunkReader() = default;

bool XcChunkReader::had_header() const { return state_->pro.had_header; }

XcData XcChunkReader::next(int64_t max_docs) {
  if (max_docs < 1) throw std::invalid_argument("max_docs must be >= 1, got " + std::to_string(max_docs));
  State& s = *state_;
  XcData out;
  int64_t max_f = -1, max_l = -1;
  if (s.cursor < s.pro.end) {
    const char* stop = s.range_end(max_docs);
    parse_lines(s.cursor, stop, s.next_line, s.pro, s.name, s.opts, out, max_f, max_l);
    s.cursor = stop;
    s.next_line += out.X.rows;
    s.n_docs += out.X.rows;
    if (s.file) s.file->release_before(s.cursor);
  } else {
    out.X.indptr.assign(1, 0);  // no rows, still a well-formed CSR
    out.Y.indptr.assign(1, 0);
  }
  if (s.cursor >= s.pro.end) check_document_count(s.pro, s.n_docs, s.name);
  set_columns(s.pro, s.opts, max_f, max_l, out);
  return out;
}

}  // namespace xmc
