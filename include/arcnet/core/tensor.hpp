#pragma once
// tensor<T, Device>: a contiguous, row-major array on one device. Copies are shallow
// (views share storage); clone() makes a deep copy; to<Other>() moves data explicitly.
#include <algorithm>
#include <initializer_list>
#include <memory>
#include <type_traits>
#include <vector>

#include "arcnet/core/bfloat16.hpp"
#include "arcnet/core/device.hpp"
#include "arcnet/core/error.hpp"
#include "arcnet/core/shape.hpp"
#include "arcnet/core/storage.hpp"

namespace arcnet {

template <class T, class Device = cpu>
class tensor {
  static_assert(is_device_v<Device>, "arcnet::tensor<T, Device>: Device must be arcnet::cpu or arcnet::cuda");
  static_assert(is_element_type_v<T>, "arcnet::tensor<T, Device>: T must be an arithmetic type or arcnet::bfloat16");

 public:
  using value_type = T;
  using device_type = Device;

  /// An undefined tensor (no storage); defined() is false.
  tensor() = default;
  /// A zero-filled tensor of shape s.
  explicit tensor(arcnet::shape s) : tensor(uninitialized(std::move(s))) { fill_zero(); }

  /// A tensor whose contents are unspecified: for outputs a kernel overwrites completely.
  static tensor uninitialized(arcnet::shape s) {
    tensor t;
    t.storage_ = std::make_shared<storage<T, Device>>(s.numel());
    t.shape_ = std::move(s);
    return t;
  }
  /// A CPU tensor in page-locked (pinned) host memory, contents unspecified: the GPU reads it by
  /// DMA, and to_device_async (core/pinned.hpp) copies it without waiting. Needs the CUDA build
  /// (a translation unit compiled by nvcc); config_error otherwise.
  static tensor uninitialized_pinned(arcnet::shape s) {
    static_assert(std::is_same_v<Device, cpu>, "tensor::uninitialized_pinned: pinned memory is host memory");
    tensor t;
    t.storage_ = std::make_shared<storage<T, cpu>>(s.numel(), pinned_memory);
    t.shape_ = std::move(s);
    return t;
  }
  static tensor zeros(arcnet::shape s) { return tensor(std::move(s)); }
  static tensor full(arcnet::shape s, T value) {
    auto t = uninitialized(std::move(s));
    t.fill(value);
    return t;
  }
  /// A CPU tensor holding `values` (row-major); values.size() must equal s.numel().
  static tensor from_vector(arcnet::shape s, std::vector<T> const& values) {
    static_assert(std::is_same_v<Device, cpu>, "tensor::from_vector builds CPU tensors; use to<cuda>() after");
    if (static_cast<index_t>(values.size()) != s.numel())
      detail::raise<shape_error>("tensor::from_vector: shape ", s, " needs ", s.numel(),
                                 " values, got ", values.size());
    auto t = uninitialized(std::move(s));
    std::copy(values.begin(), values.end(), t.data());
    return t;
  }
  static tensor scalar(T value) { return full(arcnet::shape{}, value); }

  bool defined() const { return static_cast<bool>(storage_); }
  arcnet::shape const& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  index_t numel() const { return shape_.numel(); }
  /// Size of dimension `axis` (negative counts from the end).
  index_t size(int axis) const { return shape_[shape_.normalize(axis, "tensor::size")]; }

  T* data() { return storage_ ? storage_->data() + offset_ : nullptr; }
  T const* data() const { return storage_ ? storage_->data() + offset_ : nullptr; }
  /// True for a CPU tensor in page-locked memory (uninitialized_pinned).
  bool is_pinned() const {
    if constexpr (std::is_same_v<Device, cpu>) return storage_ && storage_->pinned();
    else return false;
  }
  /// True when both tensors view the same storage.
  bool shares_storage_with(tensor const& other) const { return storage_ && storage_ == other.storage_; }

  /// Same data, new shape of equal numel; one dimension may be -1 (inferred). No copy.
  tensor view(std::vector<index_t> dims) const {
    require_defined("tensor::view");
    index_t known = 1;
    int infer = -1;
    for (size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] == -1) {
        if (infer >= 0) detail::raise<shape_error>("tensor::view: more than one -1 in the new shape");
        infer = static_cast<int>(i);
      } else {
        known *= dims[i];
      }
    }
    if (infer >= 0 && known > 0 && numel() % known == 0) dims[static_cast<size_t>(infer)] = numel() / known;
    arcnet::shape s(dims);
    if (s.numel() != numel() || (infer >= 0 && known == 0))
      detail::raise<shape_error>("tensor::view: cannot view a tensor of shape ", shape_, " (", numel(),
                                 " elements) as ", s, " (", s.numel(), " elements)");
    tensor t = *this;
    t.shape_ = std::move(s);
    return t;
  }
  tensor view(std::initializer_list<index_t> dims) const { return view(std::vector<index_t>(dims)); }
  tensor view(arcnet::shape const& s) const { return view(s.dims()); }
  tensor reshape(std::vector<index_t> dims) const { return view(std::move(dims)); }

  /// Rows [begin, begin + count) along axis 0, sharing storage.
  tensor narrow(index_t begin, index_t count) const {
    require_defined("tensor::narrow");
    if (rank() == 0 || begin < 0 || count < 0 || begin + count > shape_[0])
      detail::raise<shape_error>("tensor::narrow: rows [", begin, ", ", begin + count,
                                 ") are out of range for shape ", shape_);
    tensor t = *this;
    t.offset_ += begin * shape_.prod(1, rank());
    t.shape_[0] = count;
    return t;
  }

  /// Deep copy on the same device.
  tensor clone() const {
    require_defined("tensor::clone");
    auto t = uninitialized(shape_);
    copy_to(t);
    return t;
  }

  /// Copies this tensor onto device D2. On the same device it returns *this (no copy), like PyTorch.
  template <class D2>
  tensor<T, D2> to() const;

  /// Element-wise conversion to another type on the same device (CPU; ops::cast converts on
  /// either device and is differentiable).
  template <class U>
  tensor<U, Device> cast() const {
    static_assert(std::is_same_v<Device, cpu>, "tensor::cast is implemented on the CPU; use ops::cast_forward");
    auto t = tensor<U, Device>::uninitialized(shape_);
    T const* src = data();
    U* dst = t.data();
    for (index_t i = 0; i < numel(); ++i) dst[i] = convert<U>(src[i]);
    return t;
  }

  void fill(T value);
  void fill_zero() { fill(T(0)); }
  /// Copies the values of src (same numel) into this tensor's storage.
  void copy_from(tensor const& src) {
    if (src.numel() != numel())
      detail::raise<shape_error>("tensor::copy_from: destination ", shape_, " and source ", src.shape(),
                                 " differ in size");
    src.copy_to(*this);
  }

  // Element access (CPU only). at() checks bounds; operator[] is flat and unchecked.
  T& operator[](index_t i) { return data()[i]; }
  T const& operator[](index_t i) const { return data()[i]; }
  template <class... I>
  T& at(I... idx) {
    return data()[checked_offset({static_cast<index_t>(idx)...})];
  }
  template <class... I>
  T const& at(I... idx) const {
    return data()[checked_offset({static_cast<index_t>(idx)...})];
  }
  /// The value of a one-element tensor.
  T item() const {
    if (numel() != 1) detail::raise<shape_error>("tensor::item: expected one element, got shape ", shape_);
    return to<cpu>().data()[0];
  }
  /// All values, row-major, as a host vector.
  std::vector<T> to_vector() const {
    auto h = to<cpu>();
    return std::vector<T>(h.data(), h.data() + numel());
  }

 private:
  template <class, class>
  friend class tensor;

  void require_defined(char const* op) const {
    if (!defined()) detail::raise<error>(op, ": the tensor is undefined (default-constructed)");
  }
  index_t checked_offset(std::initializer_list<index_t> idx) const {
    static_assert(std::is_same_v<Device, cpu>, "tensor::at reads host memory; copy with to<cpu>() first");
    if (static_cast<int>(idx.size()) != rank())
      detail::raise<shape_error>("tensor::at: ", idx.size(), " indices for a tensor of rank ", rank(),
                                 " and shape ", shape_);
    index_t off = 0;
    int axis = 0;
    for (index_t i : idx) {
      if (i < 0 || i >= shape_[axis])
        detail::raise<shape_error>("tensor::at: index ", i, " is out of range for axis ", axis, " of shape ",
                                   shape_);
      off = off * shape_[axis] + i;
      ++axis;
    }
    return off;
  }
  void copy_to(tensor& dst) const;

  std::shared_ptr<storage<T, Device>> storage_;
  index_t offset_ = 0;
  arcnet::shape shape_;
};

// ---- CPU definitions -------------------------------------------------------------------------
namespace detail {
template <class T>
void host_copy(T const* src, T* dst, index_t n) {
  if (n > 0 && src != dst) std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T));
}
}  // namespace detail

template <class T, class Device>
void tensor<T, Device>::fill(T value) {
  if constexpr (std::is_same_v<Device, cpu>) {
    // Gradients are zero-filled on the thread that runs the backward pass: share large fills
    // with the other threads instead of leaving them waiting (4 % of a small ResNet's step).
    T* p = data();
    index_t const n = numel(), block = index_t(1) << 16;
    if (n < 4 * block) {
      std::fill(p, p + n, value);
      return;
    }
#pragma omp parallel for schedule(static)
    for (index_t b = 0; b < (n + block - 1) / block; ++b)
      std::fill(p + b * block, p + std::min(n, (b + 1) * block), value);
  } else {
#if defined(__CUDACC__)
    gpu::fill(data(), numel(), value);
#endif
  }
}

template <class T, class Device>
void tensor<T, Device>::copy_to(tensor& dst) const {
  if constexpr (std::is_same_v<Device, cpu>) {
    detail::host_copy(data(), dst.data(), numel());
  } else {
#if defined(__CUDACC__)
    gpu::copy(dst.data(), data(), numel(), cudaMemcpyDeviceToDevice);
#endif
  }
}

template <class T, class Device>
template <class D2>
tensor<T, D2> tensor<T, Device>::to() const {
  if constexpr (std::is_same_v<Device, D2>) {
    return *this;
  } else {
#if defined(__CUDACC__)
    auto t = tensor<T, D2>::uninitialized(shape_);
    auto kind = std::is_same_v<D2, cuda> ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;
    gpu::copy(t.data(), data(), numel(), kind);
    // From pinned memory the copy does not wait for the stream; to() promises that the source
    // may change or die on return (PyTorch's non_blocking=False), so wait here.
    // to_device_async (core/pinned.hpp) is the form that does not wait.
    if constexpr (std::is_same_v<Device, cpu>)
      if (is_pinned() && numel() > 0) gpu::synchronize();
    return t;
#else
    static_assert(detail::always_false<D2>,
                  "tensor::to<cuda>() copies through CUDA: compile this translation unit with nvcc");
    return {};
#endif
  }
}

/// Throws shape_error naming `op` unless a and b have the same shape.
template <class T, class D, class U, class D2>
void check_same_shape(char const* op, tensor<T, D> const& a, tensor<U, D2> const& b) {
  if (a.shape() != b.shape())
    detail::raise<shape_error>(op, ": expected tensors of the same shape, got ", a.shape(), " and ", b.shape());
}
/// Throws shape_error unless t has the given rank.
template <class T, class D>
void check_rank(char const* op, char const* name, tensor<T, D> const& t, int rank) {
  if (!t.defined()) detail::raise<error>(op, ": ", name, " is undefined");
  if (t.rank() != rank)
    detail::raise<shape_error>(op, ": expected ", name, " of rank ", rank, ", got shape ", t.shape());
}

}  // namespace arcnet
