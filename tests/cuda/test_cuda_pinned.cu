// CUDA tests of pinned host memory and to_device_async (core/pinned.hpp, the pinned cache in
// core/cuda.hpp) and of the loader's pin_memory. The hazard under test is a host buffer that is
// reused (by the loader's next batch) while an asynchronous copy from it is still queued: each
// test first parks the stream behind a kernel that spins for a while, so the copy is certainly
// still pending when the host goes on. On the emulator (tests/cuda_emulator) the spin is a hold:
// the stream's later work waits until the host waits for it, however long that takes.
#include "cuda/cuda_test_util.hpp"

#include <cstdint>
#include <stdexcept>
#include <vector>

#include <arcnet/core/pinned.hpp>
#include <arcnet/data/loader.hpp>

using namespace arcnet;

namespace pinned_test {

using cuda_testing::spin_stream;
using cuda_testing::stream_busy;

inline cudaMemoryType memory_type(void const* p) {
  cudaPointerAttributes a{};
  ARCNET_CUDA_CHECK(cudaPointerGetAttributes(&a, p));
  return a.type;
}

/// Sample i of epoch seed s: an (8, 6, 3) image whose values tell i, s and the position apart.
inline data::loaded_sample sample(index_t i, std::uint64_t seed) {
  auto t = tensor<float, cpu>::uninitialized(shape{8, 6, 3});
  for (index_t k = 0; k < t.numel(); ++k)
    t[k] = static_cast<float>(i * 1000 + k) + static_cast<float>(seed % 997) * 1e-3f;
  return {t, i % 7};
}

}  // namespace pinned_test

TEST_CASE("cuda pinned: uninitialized_pinned is page-locked, cached and copied back exactly", "[cuda]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace pinned_test;
  REQUIRE(detail::pinned_memory_available());
  gpu::synchronize();
  auto h = tensor<float, cpu>::uninitialized_pinned(shape{300, 7});
  CHECK(h.is_pinned());
  CHECK(memory_type(h.data()) == cudaMemoryTypeHost);
  CHECK(reinterpret_cast<std::uintptr_t>(h.data()) % 64 == 0);
  auto pageable = tensor<float, cpu>::uninitialized(shape{300, 7});
  CHECK_FALSE(pageable.is_pinned());
  CHECK(memory_type(pageable.data()) == cudaMemoryTypeUnregistered);

  auto ref = cuda_testing::random_tensor<float>(shape{300, 7}, 11);
  h.copy_from(ref);
  auto d = to_device_async<cuda>(h);
  CHECK(d.shape() == h.shape());
  CHECK(d.to_vector() == ref.to_vector());
  CHECK(to_device_async<cuda>(pageable.view({7, 300})).shape() == (shape{7, 300}));
  CHECK(to_device_async<cpu>(h).shares_storage_with(h));  // the CPU "device": no copy
  auto empty = tensor<float, cpu>::uninitialized_pinned(shape{0, 3});
  CHECK(to_device_async<cuda>(empty).numel() == 0);

  // A freed block whose copies have completed is reused, without another cudaHostAlloc.
  gpu::synchronize();
  h = {};
  auto const before = gpu::pinned_memory_stats();
  auto again = tensor<float, cpu>::uninitialized_pinned(shape{7, 300});
  auto const after = gpu::pinned_memory_stats();
  CHECK(after.host_allocs == before.host_allocs);
  CHECK(after.reuses == before.reuses + 1);
  CHECK(after.in_use >= again.numel() * sizeof(float));
}

TEST_CASE("cuda pinned: a block is not reused while a copy from it is queued", "[cuda]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace pinned_test;
  gpu::synchronize();
  shape const s{64, 1024};
  auto src = tensor<float, cpu>::uninitialized_pinned(s);
  src.fill(1.0f);
  float const* block = src.data();
  spin_stream(200);
  auto d = to_device_async<cuda>(src);  // queued behind the spin: returns at once
  REQUIRE(stream_busy());               // else this test proves nothing
  src = {};                              // the copy's source dies first, as a loader batch does
  auto next = tensor<float, cpu>::uninitialized_pinned(s);
  CHECK(next.data() != block);  // the pending block is not handed out
  next.fill(2.0f);              // the host writes the next batch meanwhile
  CHECK(stream_busy());
  auto values = d.to_vector();  // waits for the spin and the copy
  bool all_one = true;
  for (float v : values) all_one = all_one && v == 1.0f;
  CHECK(all_one);
  // Once the copy has completed, the same size gets the first block back.
  auto third = tensor<float, cpu>::uninitialized_pinned(s);
  CHECK(third.data() == block);

  // to<cuda>() from pinned memory waits: the source may change at once.
  third.fill(3.0f);
  spin_stream(50);
  auto d3 = third.to<cuda>();
  CHECK_FALSE(stream_busy());
  third.fill(4.0f);
  CHECK(d3.to_vector() == std::vector<float>(static_cast<std::size_t>(s.numel()), 3.0f));

  // From pageable memory to_device_async falls back to a copy that has read the source on return.
  auto page = tensor<float, cpu>::full(s, 5.0f);
  spin_stream(50);
  auto d5 = to_device_async<cuda>(page);
  page.fill(6.0f);
  CHECK(d5.to_vector() == std::vector<float>(static_cast<std::size_t>(s.numel()), 5.0f));
}

TEST_CASE("cuda pinned: loader pin_memory batches match the CPU loader's while copies are in flight", "[cuda]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace pinned_test;
  data::loader_options o;
  o.batch_size = 8;
  o.workers = 3;
  o.prefetch = 2;
  o.shuffle = true;
  o.seed = 5;
  data::loader reference(45, sample, o);  // 8 x 5 + 5: the last batch is smaller
  o.pin_memory = true;
  data::loader pinned(45, sample, o);
  for (std::uint64_t epoch = 0; epoch < 3; ++epoch) {
    reference.begin_epoch(epoch);
    pinned.begin_epoch(epoch);
    std::vector<data::batch> expected;
    std::vector<tensor<float, cuda>> copies;
    std::vector<float const*> sources;
    data::batch b;
    while (pinned.next(b)) {  // next() frees the previous batch while its copy is queued
      CHECK(b.images.is_pinned());
      CHECK(memory_type(b.images.data()) == cudaMemoryTypeHost);
      spin_stream(3);
      copies.push_back(to_device_async<cuda>(b.images));
      sources.push_back(b.images.data());
      data::batch r;
      REQUIRE(reference.next(r));
      CHECK_FALSE(r.images.is_pinned());
      CHECK(r.indices == b.indices);
      CHECK(r.labels == b.labels);
      expected.push_back(std::move(r));
    }
    data::batch r;
    CHECK_FALSE(reference.next(r));
    REQUIRE(copies.size() == 6);
    CHECK(expected.back().size() == 5);
    // While the stream was busy, each batch had a buffer of its own.
    for (std::size_t i = 1; i < sources.size(); ++i) CHECK(sources[i] != sources[i - 1]);
    for (std::size_t i = 0; i < copies.size(); ++i) {
      INFO("epoch " << epoch << ", batch " << i);
      REQUIRE(copies[i].shape() == expected[i].images.shape());
      CHECK(copies[i].to_vector() == expected[i].images.to_vector());  // bit for bit
    }
  }
}

TEST_CASE("cuda pinned: a copy queued behind slow work survives the loader refilling its window", "[cuda]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace pinned_test;
  data::loader_options o;
  o.batch_size = 4;
  o.workers = 2;
  o.prefetch = 1;  // one slot: the next batch is built as soon as this one is taken
  o.pin_memory = true;
  o.skip_bad = true;  // sample 13 fails: its batch is compacted into a new (pinned) buffer
  auto load = [](index_t i, std::uint64_t seed) {
    if (i == 13) throw std::runtime_error("bad sample");
    return sample(i, seed);
  };
  data::loader ld(20, load, o);
  ld.begin_epoch(0);
  data::batch b;
  REQUIRE(ld.next(b));
  auto const first = b.images.to_vector();
  spin_stream(200);
  auto d = to_device_async<cuda>(b.images);
  REQUIRE(stream_busy());
  // Take the rest of the epoch: batch 0's buffer is freed at once, and the workers allocate and
  // fill every later batch while its copy is still waiting behind the spin.
  std::vector<std::vector<float>> later;
  std::vector<index_t> sizes;
  while (ld.next(b)) {
    CHECK(b.images.is_pinned());
    later.push_back(b.images.to_vector());
    sizes.push_back(b.size());
  }
  CHECK(stream_busy());
  CHECK(sizes == std::vector<index_t>{4, 4, 3, 4});
  CHECK(ld.bad_count() == 1);
  CHECK(d.to_vector() == first);
  // And `first` is batch 0 itself: rows 0..3, each its sample under the epoch's seed.
  index_t const per = 8 * 6 * 3;
  REQUIRE(first.size() == static_cast<std::size_t>(4 * per));
  for (index_t row = 0; row < 4; ++row) {
    auto const s = sample(row, data::sample_seed(0, 0, static_cast<std::uint64_t>(row)));
    for (index_t k = 0; k < per; k += 13) CHECK(first[static_cast<std::size_t>(row * per + k)] == s.image[k]);
  }
}

TEST_CASE("cuda pinned: events and stream waits order the work that the pinned cache relies on", "[cuda]") {
  ARCNET_REQUIRE_CUDA_DEVICE();
  using namespace pinned_test;
  gpu::synchronize();
  index_t const n = 4096;
  auto a = tensor<float, cuda>::full(shape{n}, 1.0f);
  auto b = tensor<float, cuda>::full(shape{n}, 0.0f);
  gpu::synchronize();

  // An event recorded behind slow work is not done until that work is; then the work's result shows.
  cudaEvent_t done = nullptr;
  ARCNET_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  spin_stream(200);
  gpu::fill(a.data(), n, 7.0f);
  ARCNET_CUDA_CHECK(cudaEventRecord(done, gpu::stream()));
  cudaError_t const pending = cudaEventQuery(done);
  cudaGetLastError();
  CHECK(pending == cudaErrorNotReady);

  // A second stream that waits for the event reads 7, not the 1 that was there before.
  cudaStream_t side = nullptr;
  ARCNET_CUDA_CHECK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  ARCNET_CUDA_CHECK(cudaStreamWaitEvent(side, done, 0));
  ARCNET_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), static_cast<std::size_t>(n) * sizeof(float),
                                    cudaMemcpyDeviceToDevice, side));
  ARCNET_CUDA_CHECK(cudaStreamSynchronize(side));
  CHECK(cudaEventQuery(done) == cudaSuccess);
  CHECK(b.to_vector() == std::vector<float>(static_cast<std::size_t>(n), 7.0f));
  ARCNET_CUDA_CHECK(cudaStreamDestroy(side));
  ARCNET_CUDA_CHECK(cudaEventDestroy(done));
}

#if defined(ARCNET_CUDA_EMULATOR)
// On a GPU this would read freed memory (what the pinned cache exists to prevent); the emulator
// reports it, so a cache that frees a block too early fails the tests above instead of passing.
TEST_CASE("cuda emulator: a queued copy from pinned memory freed before it runs is reported", "[cuda]") {
  void* host = nullptr;
  REQUIRE(cudaHostAlloc(&host, 256, cudaHostAllocPortable) == cudaSuccess);
  auto d = tensor<float, cuda>::uninitialized(shape{64});
  REQUIRE(cudaMemcpyAsync(d.data(), host, 256, cudaMemcpyHostToDevice, gpu::stream()) == cudaSuccess);
  REQUIRE(cudaFreeHost(host) == cudaSuccess);
  CHECK(cudaStreamSynchronize(gpu::stream()) == cudaErrorLaunchFailure);
  CHECK(cudaGetLastError() == cudaSuccess);  // reported once
  gpu::synchronize();
}
#endif
