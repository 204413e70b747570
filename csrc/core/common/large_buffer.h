#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>
#include <type_traits>

namespace xmc {

// Scratch storage for gigabyte-sized arrays that are written in full before they are read.
// A std::vector would zero every element first, in one thread; here the first write (in the
// caller's parallel loop) is the only one, and faults the pages in from every thread. (Advising
// them as transparent huge pages made the first write slower here: the kernel compacts memory
// to find them.)
template <class T>
class LargeBuffer {
  static_assert(std::is_trivially_copyable<T>::value, "LargeBuffer holds plain values");

 public:
  LargeBuffer() = default;
  LargeBuffer(const LargeBuffer&) = delete;
  LargeBuffer& operator=(const LargeBuffer&) = delete;
  ~LargeBuffer() { std::free(data_); }

  // At least n elements, contents unspecified; keeps the storage when it is big enough.
  T* reserve(size_t n) {
    if (n <= capacity_) return data_;
    std::free(data_);
    data_ = nullptr;
    capacity_ = 0;
    void* p = std::malloc(n * sizeof(T));
    if (p == nullptr) throw std::bad_alloc();
    data_ = static_cast<T*>(p);
    capacity_ = n;
    return data_;
  }
  T* data() { return data_; }
  const T* data() const { return data_; }

 private:
  T* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace xmc
