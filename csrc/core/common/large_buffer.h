#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>
#include <type_traits>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#define XMC_LARGE_BUFFER_MMAP 1
#endif

namespace xmc {

// Storage for gigabyte-sized arrays that are written in full before they are read.
// A std::vector would zero every element first, in one thread; here the first write (in the
// caller's parallel loop) is the only one, and faults the pages in from every thread. (Advising
// them as transparent huge pages made the first write slower here: the kernel compacts memory
// to find them.)
//
// On POSIX systems the storage is an anonymous mapping reserved without swap accounting
// (MAP_NORESERVE), so a caller may reserve an upper bound much larger than what it will write:
// only written pages take memory, and under Linux's default overcommit rule a single request
// larger than RAM would be refused otherwise.
template <class T>
class LargeBuffer {
  static_assert(std::is_trivially_copyable<T>::value, "LargeBuffer holds plain values");

 public:
  LargeBuffer() = default;
  LargeBuffer(const LargeBuffer&) = delete;
  LargeBuffer& operator=(const LargeBuffer&) = delete;
  LargeBuffer(LargeBuffer&& other) noexcept : data_(other.data_), capacity_(other.capacity_) {
    other.data_ = nullptr;
    other.capacity_ = 0;
  }
  LargeBuffer& operator=(LargeBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = other.data_;
      capacity_ = other.capacity_;
      other.data_ = nullptr;
      other.capacity_ = 0;
    }
    return *this;
  }
  ~LargeBuffer() { release(); }

  // At least n elements, contents unspecified; keeps the storage when it is big enough.
  T* reserve(size_t n) {
    if (n <= capacity_) return data_;
    release();
    data_ = static_cast<T*>(allocate(n * sizeof(T)));
    capacity_ = n;
    return data_;
  }

  // Keeps the first n elements and gives the pages past them back: for a buffer reserved to
  // a bound and filled to less, the written pages past n would otherwise stay resident.
  void shrink(size_t n) {
    if (n >= capacity_) return;
#ifdef XMC_LARGE_BUFFER_MMAP
    const size_t keep = round_to_pages(n * sizeof(T)), held = round_to_pages(capacity_ * sizeof(T));
    if (keep < held) ::munmap(reinterpret_cast<char*>(data_) + keep, held - keep);
    if (keep == 0) data_ = nullptr;
    capacity_ = keep / sizeof(T);
#else
    (void)n;  // malloc'd storage is kept whole
#endif
  }

  T* data() { return data_; }
  const T* data() const { return data_; }

 private:
#ifdef XMC_LARGE_BUFFER_MMAP
  static size_t round_to_pages(size_t bytes) {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    return (bytes + page - 1) / page * page;
  }
  static void* allocate(size_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return p;
  }
  void release() {
    if (data_ != nullptr) ::munmap(data_, round_to_pages(capacity_ * sizeof(T)));
    data_ = nullptr;
    capacity_ = 0;
  }
#else
  static void* allocate(size_t bytes) {
    void* p = std::malloc(bytes);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void release() {
    std::free(data_);
    data_ = nullptr;
    capacity_ = 0;
  }
#endif

  T* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace xmc
