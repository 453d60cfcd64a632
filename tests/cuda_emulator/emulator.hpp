#pragma once
// A host emulator of the CUDA programming model, for testing arcnet's CUDA backend on machines
// without a GPU (test code only; never part of the product). The CUDA test files are compiled by
// the host compiler with this folder first on the include path, so that <cuda_runtime.h> and
// <cublas_v2.h> are the emulator's, and with __CUDACC__ defined so that arcnet's CUDA backend is
// compiled. Kernels then run on the CPU:
//
// - A launch (ARCNET_CUDA_KERNEL, core/cuda.hpp) runs every block of the grid in turn and every
//   thread of a block as a fiber with its own stack, so that __syncthreads() and the
//   warp shuffles really suspend a thread until the others of its block or warp arrive.
// - __shared__ variables are per OS thread (static thread_local), shared by the fibers of the
//   block that runs there.
// - Device memory is host memory handed out by cudaMalloc and remembered, so that the emulator
//   can check what a GPU would fault on or silently get wrong: a kernel argument that points to
//   host memory, a copy whose direction does not match its pointers, a cuBLAS operand outside
//   device memory, a shuffle that reads a lane that has exited, threads that wait at different
//   barriers. Each is reported as a launch failure (the next cudaGetLastError) with a message on
//   stderr.
// - Streams are queues that run as late as a GPU may: a kernel, a cuBLAS or cuDNN call, an
//   asynchronous copy or memset is queued on its stream and runs only when the host waits for it
//   (cudaStreamSynchronize, cudaEventSynchronize, cudaDeviceSynchronize, a synchronous copy,
//   cudaFree) or asks (cudaStreamQuery, cudaEventQuery: the work that is free to run does). So a
//   host that reads a result before it waits, or reuses a buffer that a queued copy still reads,
//   sees wrong values here as it might on a GPU; a queued copy whose pinned host memory was freed
//   is reported. cudaStreamWaitEvent and the legacy default stream order the streams; which
//   stream runs first otherwise is ARCNET_EMU_ORDER's choice (see waited_last). Launch
//   configurations and pointer arguments are still checked at the call, as the GPU's launch does.
//   Tests hold a stream (hold()) where on a GPU they would spin a kernel.
// - ARCNET_EMU_DEVICES devices (default 1), so that `mpirun -np N` ranks each take one; nccl.h
//   runs their collectives through MPI.
// - cublasGemmEx accumulates in double and rounds its operands to tf32 or bf16 in those compute
//   modes, as the tensor cores do.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorNotReady = 600,
  cudaErrorLaunchFailure = 719,
} cudaError_t;

namespace arcnet_emu {

// ---- errors ---------------------------------------------------------------------------------

struct error_state {
  std::atomic<cudaError_t> sticky{cudaSuccess};  // what cudaGetLastError returns next
};
inline error_state& errors() {
  static error_state e;
  return e;
}
/// Says on stderr what a call did wrong (its status says that it failed).
inline void report(std::string const& what) { std::fprintf(stderr, "cuda emulator: %s\n", what.c_str()); }
/// Records a failure the way CUDA reports an asynchronous fault: on stderr now, and as the
/// status of the next cudaGetLastError (which arcnet checks after every launch).
inline void fail(cudaError_t code, std::string const& what) {
  report(what);
  errors().sticky = code;
}

// ---- memory ---------------------------------------------------------------------------------

/// Devices the emulator reports: ARCNET_EMU_DEVICES (default 1), so that a process of an
/// `mpirun -np N` run can take a device of its own, as on a node with N GPUs. They share one
/// memory and one queue of work: a device here is a number.
inline int device_count() {
  static int const n = [] {
    char const* env = std::getenv("ARCNET_EMU_DEVICES");
    int const v = env ? std::atoi(env) : 1;
    return v >= 1 && v <= 64 ? v : 1;
  }();
  return n;
}
inline int& current_device() {
  static thread_local int d = 0;
  return d;
}

enum class memory_kind { device, pinned };
struct allocation {
  std::size_t size;
  memory_kind kind;
  int device;  // current when it was allocated
};
struct memory_map {
  std::mutex mutex;
  std::map<char const*, allocation> blocks;

  /// The kind of memory p points into (and its device), or nothing for memory the emulator did
  /// not hand out.
  bool find(void const* p, memory_kind* kind, int* device = nullptr) {
    std::lock_guard<std::mutex> lock(mutex);
    auto const* c = static_cast<char const*>(p);
    auto it = blocks.upper_bound(c);
    if (it == blocks.begin()) return false;
    --it;
    if (c >= it->first + std::max<std::size_t>(it->second.size, 1)) return false;
    *kind = it->second.kind;
    if (device) *device = it->second.device;
    return true;
  }
  /// Whether [p, p + bytes) lies inside one live allocation of that kind.
  bool in_range(void const* p, std::size_t bytes, memory_kind kind) {
    std::lock_guard<std::mutex> lock(mutex);
    auto const* c = static_cast<char const*>(p);
    auto it = blocks.upper_bound(c);
    if (it == blocks.begin()) return false;
    --it;
    return it->second.kind == kind && c + bytes <= it->first + it->second.size;
  }
  bool device_range(void const* p, std::size_t bytes) { return in_range(p, bytes, memory_kind::device); }
};
inline memory_map& memory() {
  static memory_map* m = new memory_map();  // never destroyed: tensors may outlive main()
  return *m;
}
inline bool is_device_pointer(void const* p) {
  memory_kind k = memory_kind::pinned;
  return memory().find(p, &k) && k == memory_kind::device;
}

inline cudaError_t allocate(void** p, std::size_t bytes, memory_kind kind) {
  if (!p) return cudaErrorInvalidValue;
  *p = nullptr;
  if (bytes == 0) return cudaSuccess;
  if (bytes > (std::size_t(1) << 40)) return cudaErrorMemoryAllocation;
  void* q = nullptr;  // exactly `bytes`: under AddressSanitizer a kernel reading past the end is caught
  if (posix_memalign(&q, 256, bytes) != 0) return cudaErrorMemoryAllocation;
  // Fresh device memory holds garbage on a GPU; NaN bytes here make a read before a write visible.
  std::memset(q, 0xff, bytes);
  std::lock_guard<std::mutex> lock(memory().mutex);
  memory().blocks[static_cast<char const*>(q)] = allocation{bytes, kind, current_device()};
  *p = q;
  return cudaSuccess;
}
inline cudaError_t release(void* p, memory_kind kind) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(memory().mutex);
  auto it = memory().blocks.find(static_cast<char const*>(p));
  if (it == memory().blocks.end() || it->second.kind != kind) return cudaErrorInvalidValue;
  memory().blocks.erase(it);
  std::free(p);
  return cudaSuccess;
}

}  // namespace arcnet_emu

// ---- streams: queues that run when the host waits ------------------------------------------

struct arcnet_emu_stream;
namespace arcnet_emu {
using task = std::function<void()>;
/// One entry of a stream's queue: work to run, or a wait for another stream (cudaStreamWaitEvent,
/// and the legacy default stream's order), or a hold (hold()) that only a host wait passes.
struct queued {
  task run;
  arcnet_emu_stream* after = nullptr;  // wait until that stream has completed `after_ticket`
  std::uint64_t after_ticket = 0;
  bool hold = false;
};
}  // namespace arcnet_emu
struct arcnet_emu_stream {
  bool blocking = true;  // orders against the legacy default stream (not cudaStreamNonBlocking)
  std::deque<arcnet_emu::queued> pending;
  std::uint64_t enqueued = 0, completed = 0;  // entries so far; an event waits for a count
};

namespace arcnet_emu {

struct scheduler {
  std::mutex mutex;               // guards every queue and `streams`
  std::recursive_mutex running;   // one thread runs queued work at a time (waits drain recursively)
  arcnet_emu_stream legacy;       // the null stream
  std::vector<arcnet_emu_stream*> streams{&legacy};
  std::vector<arcnet_emu_stream*> retired;  // destroyed streams (drained); waits may still name them
};
inline scheduler& device() {
  static scheduler* s = new scheduler();  // never destroyed: tensors may outlive main()
  return *s;
}
inline arcnet_emu_stream* resolve(arcnet_emu_stream* s) { return s ? s : &device().legacy; }
inline std::uint64_t completed(arcnet_emu_stream* s) {
  std::lock_guard<std::mutex> lock(device().mutex);
  return s->completed;
}

/// The order in which queued work of different streams runs, both orders a GPU may choose:
/// - waited first (the default): the stream the host waits for runs its work as soon as its own
///   waits allow, the other streams only as far as those waits need;
/// - waited last (ARCNET_EMU_ORDER=waited-last): every other stream first runs what it can
///   without waiting, then the stream waited for.
/// A missing cudaStreamWaitEvent shows in one of them: work that must come after another
/// stream's runs too early in the first when it is on the stream waited for, in the second when
/// it is on another one.
inline bool waited_last() {
  static bool const last = [] {
    char const* env = std::getenv("ARCNET_EMU_ORDER");
    return env && std::string(env) == "waited-last";
  }();
  return last;
}

enum class until { waited, polled, ready };
/// Runs s's queue in order until `ticket` entries have completed. A host wait (until::waited)
/// runs everything up to there; a query (until::polled) stops at a hold, at a wait for another
/// stream that cannot get there yet, or when another thread is running queued work: a GPU goes
/// on by itself, and a host that polls sees that progress. until::ready (the other streams in
/// the waited-last order) also stops at any wait not met yet, without running the stream waited for.
inline void drain(arcnet_emu_stream* s, std::uint64_t ticket, until mode) {
  s = resolve(s);
  std::unique_lock<std::recursive_mutex> run(device().running, std::defer_lock);
  if (mode == until::waited) run.lock();
  else if (!run.try_lock()) return;
  if (waited_last() && mode != until::ready) {
    std::vector<arcnet_emu_stream*> others;
    {
      std::lock_guard<std::mutex> lock(device().mutex);
      for (auto* o : device().streams)
        if (o != s) others.push_back(o);
    }
    for (auto* o : others) drain(o, std::numeric_limits<std::uint64_t>::max(), until::ready);
  }
  for (;;) {
    arcnet_emu_stream* after = nullptr;
    std::uint64_t after_ticket = 0;
    task work;
    {
      std::lock_guard<std::mutex> lock(device().mutex);
      if (s->completed >= ticket || s->pending.empty()) return;
      queued& front = s->pending.front();
      if (front.hold && mode != until::waited) return;
      if (front.after && front.after->completed < front.after_ticket) {
        if (mode == until::ready) return;
        after = front.after;
        after_ticket = front.after_ticket;
      } else {
        work = std::move(front.run);
        s->pending.pop_front();
      }
    }
    if (after) {  // run the other stream that far, then look at the front again
      drain(after, after_ticket, mode);
      if (completed(after) < after_ticket) return;  // only when polled
      continue;
    }
    if (work) work();
    std::lock_guard<std::mutex> lock(device().mutex);
    ++s->completed;
  }
}
inline void drain(arcnet_emu_stream* s) { drain(s, std::numeric_limits<std::uint64_t>::max(), until::waited); }

/// Where each stream (the blocking ones only, or all) stands now: what a wait for "everything
/// enqueued so far" waits for.
inline std::vector<std::pair<arcnet_emu_stream*, std::uint64_t>> tickets(bool blocking_only) {
  std::lock_guard<std::mutex> lock(device().mutex);
  std::vector<std::pair<arcnet_emu_stream*, std::uint64_t>> t;
  for (auto* s : device().streams)
    if (s->blocking || !blocking_only) t.emplace_back(s, s->enqueued);
  return t;
}
inline void drain_to(std::vector<std::pair<arcnet_emu_stream*, std::uint64_t>> const& t) {
  for (auto const& [s, ticket] : t) drain(s, ticket, until::waited);
}
/// What a synchronous copy or memset waits for: the legacy default stream, and with it every
/// blocking stream.
inline void drain_blocking() { drain_to(tickets(true)); }
/// What cudaDeviceSynchronize and cudaFree wait for: every stream.
inline void drain_all() { drain_to(tickets(false)); }

/// Appends entries to s's queue. Work on the legacy stream first waits for what the blocking
/// streams hold now, and work on a blocking stream for what the legacy stream holds, as CUDA
/// orders them.
inline void push(arcnet_emu_stream* s, queued entry) {
  s = resolve(s);
  std::lock_guard<std::mutex> lock(device().mutex);
  auto wait_for = [&](arcnet_emu_stream* other) {
    if (other == s || other->completed >= other->enqueued) return;
    s->pending.push_back(queued{{}, other, other->enqueued, false});
    ++s->enqueued;
  };
  if (s == &device().legacy) {
    for (auto* other : device().streams)
      if (other->blocking) wait_for(other);
  } else if (s->blocking) {
    wait_for(&device().legacy);
  }
  s->pending.push_back(std::move(entry));
  ++s->enqueued;
}
/// Queues `work` on s (a kernel, a GEMM, a convolution, an asynchronous copy).
inline void enqueue(arcnet_emu_stream* s, task work) { push(s, queued{std::move(work), nullptr, 0, false}); }
/// Queues a hold on s: later work on s waits until the host waits for it, however long that is.
/// The tests' stand-in for a kernel that keeps the GPU busy.
inline void hold(arcnet_emu_stream* s) { push(s, queued{{}, nullptr, 0, true}); }

// ---- fibers: the threads of one block --------------------------------------------------------

inline constexpr unsigned warp_size = 32;
inline constexpr std::size_t stack_bytes = 128 * 1024;

struct fiber {
  void* sp = nullptr;  // saved stack pointer while suspended
  std::unique_ptr<char[]> stack;
  void* asan_fake_stack = nullptr;  // AddressSanitizer's state of the fiber while it is suspended
  uint3 index{0, 0, 0};
  unsigned linear = 0;
  enum class state { ready, at_barrier, at_warp_barrier, done } status = state::ready;
};

struct warp_state {
  unsigned alive = 0, arrived = 0;
  std::uint64_t slots[warp_size] = {};
  bool present[warp_size] = {};  // which lanes exist and have not exited
};

/// Runs one block: every thread a fiber, resumed in turn until each has returned.
struct block_runner {
  std::vector<fiber> fibers;
  std::vector<warp_state> warps;
  void* scheduler_sp = nullptr;
  void* scheduler_fake_stack = nullptr;                    // AddressSanitizer: the scheduler's state
  void const* scheduler_stack = nullptr;                   // and its stack, learnt by the first fiber
  std::size_t scheduler_stack_size = 0;
  fiber* current = nullptr;
  unsigned alive = 0, arrived = 0;
  dim3 block_dim, grid_dim;
  uint3 block_index{0, 0, 0};
  void (*body)(void*) = nullptr;
  void* body_arg = nullptr;
  std::string failure;  // set by a thread that did something a GPU would not do

  void note_failure(std::string what) {
    if (failure.empty()) failure = std::move(what);
  }
};

inline thread_local block_runner* runner = nullptr;

#if !defined(__x86_64__)
#error "the CUDA emulator switches between fibers with x86-64 code"
#endif
/// Saves the callee-saved registers on the current stack and its pointer in *save, then
/// continues on the stack `load` (where the same was saved). glibc's swapcontext does this too,
/// but also two system calls for the signal mask, which made them most of the emulator's time.
__attribute__((naked, noinline)) inline void switch_stack(void** /*save: rdi*/, void* /*load: rsi*/) {
  asm volatile(
      "pushq %rbp\n\tpushq %rbx\n\tpushq %r12\n\tpushq %r13\n\tpushq %r14\n\tpushq %r15\n\t"
      "movq %rsp, (%rdi)\n\tmovq %rsi, %rsp\n\t"
      "popq %r15\n\tpopq %r14\n\tpopq %r13\n\tpopq %r12\n\tpopq %rbx\n\tpopq %rbp\n\tret\n\t");
}

// Under AddressSanitizer every switch is announced, so that it knows which stack is current (else
// it reports the fibers' locals as overflows). No-ops otherwise.
#if defined(__SANITIZE_ADDRESS__)
}  // namespace arcnet_emu
#include <sanitizer/common_interface_defs.h>
namespace arcnet_emu {
inline void asan_leaving(void** fake_stack, void const* to_stack, std::size_t size) {
  __sanitizer_start_switch_fiber(fake_stack, to_stack, size);
}
inline void asan_arrived(void* fake_stack, void const** from_stack, std::size_t* size) {
  __sanitizer_finish_switch_fiber(fake_stack, from_stack, size);
}
#else
inline void asan_leaving(void**, void const*, std::size_t) {}
inline void asan_arrived(void*, void const**, std::size_t*) {}
#endif

/// Lets every thread of the block that waits at __syncthreads go on.
inline void release_block(block_runner& r) {
  r.arrived = 0;
  for (auto& g : r.fibers)
    if (g.status == fiber::state::at_barrier) g.status = fiber::state::ready;
}

/// Lets every lane of warp w that waits at the warp barrier go on.
inline void release_warp(block_runner& r, unsigned w) {
  r.warps[w].arrived = 0;
  for (unsigned l = 0; l < warp_size; ++l) {
    unsigned const i = w * warp_size + l;
    if (i < r.fibers.size() && r.fibers[i].status == fiber::state::at_warp_barrier)
      r.fibers[i].status = fiber::state::ready;
  }
}

inline void fiber_entry() {
  block_runner& r = *runner;
  fiber& f = *r.current;
  r.body(r.body_arg);
  f.status = fiber::state::done;
  --r.alive;
  warp_state& w = r.warps[f.linear / warp_size];
  --w.alive;
  w.present[f.linear % warp_size] = false;
  // A thread that exits no longer holds back the barriers of the others.
  if (r.arrived > 0 && r.arrived == r.alive) release_block(r);
  if (w.arrived > 0 && w.arrived == w.alive) release_warp(r, f.linear / warp_size);
}

inline void yield_to_scheduler() {
  block_runner& r = *runner;
  fiber& f = *r.current;
  asan_leaving(&f.asan_fake_stack, r.scheduler_stack, r.scheduler_stack_size);
  switch_stack(&f.sp, r.scheduler_sp);
  asan_arrived(f.asan_fake_stack, nullptr, nullptr);
}

/// Where a fiber starts (the first switch_stack to it "returns" here); it never returns.
[[noreturn]] inline void fiber_main() {
  block_runner& r = *runner;
  asan_arrived(nullptr, &r.scheduler_stack, &r.scheduler_stack_size);
  fiber_entry();
  asan_leaving(nullptr, r.scheduler_stack, r.scheduler_stack_size);  // done: never resumed
  switch_stack(&r.current->sp, r.scheduler_sp);
  __builtin_unreachable();
}

/// __syncthreads: waits until every thread of the block that has not exited arrives.
inline void block_barrier() {
  block_runner& r = *runner;
  if (++r.arrived == r.alive) {
    release_block(r);
    return;
  }
  r.current->status = fiber::state::at_barrier;
  yield_to_scheduler();
}

/// The warp-level barrier under the shuffles and __syncwarp.
inline void warp_barrier() {
  block_runner& r = *runner;
  unsigned const w = r.current->linear / warp_size;
  warp_state& ws = r.warps[w];
  if (++ws.arrived == ws.alive) {
    release_warp(r, w);
    return;
  }
  r.current->status = fiber::state::at_warp_barrier;
  yield_to_scheduler();
}

/// __shfl_*_sync: every lane of the warp offers v; lane `source(lane)` is read.
template <class T, class Source>
T shuffle(unsigned mask, T v, Source source) {
  static_assert(sizeof(T) <= sizeof(std::uint64_t) && std::is_trivially_copyable_v<T>,
                "cuda emulator: shuffles of types up to 8 bytes");
  block_runner& r = *runner;
  unsigned const lane = r.current->linear % warp_size;
  warp_state& ws = r.warps[r.current->linear / warp_size];
  for (unsigned l = 0; l < warp_size; ++l)
    if ((mask >> l) & 1u && !ws.present[l])
      r.note_failure("a shuffle's mask names lane " + std::to_string(l) + ", which does not exist or has exited");
  std::memcpy(&ws.slots[lane], &v, sizeof(T));
  warp_barrier();
  unsigned const src = source(lane);
  T out = v;
  if (src != lane) {
    if (src >= warp_size || !ws.present[src])
      r.note_failure("a shuffle reads lane " + std::to_string(src) + ", which does not exist or has exited");
    else
      std::memcpy(&out, &ws.slots[src], sizeof(T));
  }
  warp_barrier();  // nobody overwrites a slot before every lane has read
  return out;
}

/// The fibers' stacks, kept for the next launch on this OS thread.
inline std::vector<std::unique_ptr<char[]>>& stack_pool() {
  static thread_local std::vector<std::unique_ptr<char[]>> pool;
  return pool;
}

/// Gives f a stack (from the pool) laid out as switch_stack leaves a suspended one, so that the
/// first switch to it enters fiber_main.
inline void prepare_fiber(fiber& f) {
  auto& pool = stack_pool();
  if (!pool.empty()) {
    f.stack = std::move(pool.back());
    pool.pop_back();
  } else {
    f.stack.reset(new char[stack_bytes]);
  }
  auto top = reinterpret_cast<std::uintptr_t>(f.stack.get() + stack_bytes) & ~std::uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                                // fiber_main's return address (never used)
  *--sp = reinterpret_cast<void*>(&fiber_main);   // where switch_stack's ret goes
  for (int i = 0; i < 6; ++i) *--sp = nullptr;    // rbp, rbx, r12-r15
  f.sp = sp;
}

/// Runs body(arg) as every thread of block `block_index`. Returns "" or what went wrong.
inline std::string run_block(dim3 grid, dim3 block, uint3 block_index, void (*body)(void*), void* arg) {
  unsigned const threads = block.x * block.y * block.z;
  block_runner r;
  r.block_dim = block;
  r.grid_dim = grid;
  r.block_index = block_index;
  r.body = body;
  r.body_arg = arg;
  r.fibers.resize(threads);
  r.warps.resize((threads + warp_size - 1) / warp_size);
  for (unsigned i = 0; i < threads; ++i) {
    fiber& f = r.fibers[i];
    f.linear = i;
    f.index = uint3{i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
    prepare_fiber(f);
    warp_state& w = r.warps[i / warp_size];
    ++w.alive;
    w.present[i % warp_size] = true;
  }
  r.alive = threads;
  block_runner* const outer = runner;
  runner = &r;
  while (r.alive > 0) {
    bool progressed = false;
    for (auto& f : r.fibers) {
      if (f.status != fiber::state::ready) continue;
      r.current = &f;
      asan_leaving(&r.scheduler_fake_stack, f.stack.get(), stack_bytes);
      switch_stack(&r.scheduler_sp, f.sp);
      asan_arrived(r.scheduler_fake_stack, nullptr, nullptr);
      progressed = true;
    }
    if (!progressed) {
      r.note_failure("deadlock: " + std::to_string(r.alive) +
                     " threads wait at barriers that the others never reach (__syncthreads or a "
                     "shuffle in divergent code)");
      break;
    }
  }
  runner = outer;
  for (auto& f : r.fibers) stack_pool().push_back(std::move(f.stack));
  return r.failure;
}

/// The launch behind ARCNET_CUDA_KERNEL: checks the configuration and the pointer arguments,
/// then queues the grid on the stream, to run block by block when the host waits.
template <class Kernel>
struct launcher {
  dim3 grid, block;
  std::size_t shared_bytes;
  arcnet_emu_stream* stream;
  char const* name;
  Kernel kernel;

  template <class A>
  static void check_argument(std::string& problem, std::size_t i, A const& a) {
    if constexpr (std::is_pointer_v<A>) {
      if (a != nullptr && !is_device_pointer(a) && problem.empty())
        problem = "argument " + std::to_string(i + 1) + " points to host memory, not device memory";
    }
  }

  template <class... Args>
  void operator()(Args&&... args) const {
    std::string const kname = name;
    unsigned long long const threads = 1ull * block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.y > 65535 || grid.z > 65535 || shared_bytes > 48 * 1024) {
      fail(cudaErrorInvalidConfiguration,
           "launch of " + kname + ": invalid configuration (grid " + std::to_string(grid.x) + "x" +
               std::to_string(grid.y) + "x" + std::to_string(grid.z) + ", block " + std::to_string(block.x) + "x" +
               std::to_string(block.y) + "x" + std::to_string(block.z) + ")");
      return;
    }
    auto values = std::make_tuple(std::decay_t<Args>(args)...);  // kernel arguments are copies
    std::string problem;
    std::apply(
        [&](auto const&... a) {
          std::size_t i = 0;
          (check_argument(problem, i++, a), ...);
        },
        values);
    if (!problem.empty()) return fail(cudaErrorLaunchFailure, "launch of " + kname + ": " + problem);

    enqueue(stream, [kernel = kernel, values = std::move(values), grid = grid, block = block, kname] {
      struct call {
        Kernel const* kernel;
        decltype(values) const* args;
        static void run(void* p) {
          auto* c = static_cast<call*>(p);
          std::apply(*c->kernel, *c->args);
        }
      } c{&kernel, &values};
      for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
          for (unsigned bx = 0; bx < grid.x; ++bx) {
            std::string const failure = run_block(grid, block, uint3{bx, by, bz}, &call::run, &c);
            if (!failure.empty())
              return fail(cudaErrorLaunchFailure, "kernel " + kname + ", block (" + std::to_string(bx) + ", " +
                                                      std::to_string(by) + ", " + std::to_string(bz) + "): " + failure);
          }
    });
  }
};

inline dim3 as_dim3(dim3 d) { return d; }
template <class I, class = std::enable_if_t<std::is_integral_v<I>>>
dim3 as_dim3(I n) {
  return dim3(static_cast<unsigned>(n));
}

template <class Kernel>
launcher<Kernel> make_launcher(dim3 grid, dim3 block, std::size_t shared_bytes, arcnet_emu_stream* stream,
                               char const* name, Kernel k) {
  return launcher<Kernel>{grid, block, shared_bytes, stream, name, std::move(k)};
}

}  // namespace arcnet_emu

// ---- the kernel language ------------------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static thread_local

#define threadIdx (::arcnet_emu::runner->current->index)
#define blockIdx (::arcnet_emu::runner->block_index)
#define blockDim (::arcnet_emu::runner->block_dim)
#define gridDim (::arcnet_emu::runner->grid_dim)
#define warpSize 32

// Correctly rounded arithmetic: the host compiler does not contract these into FMAs.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }

inline void __syncthreads() { ::arcnet_emu::block_barrier(); }
inline void __syncwarp(unsigned = 0xffffffffu) { ::arcnet_emu::warp_barrier(); }
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::arcnet_emu::shuffle(mask, v, [&](unsigned lane) {
    unsigned const w = static_cast<unsigned>(width);
    return lane % w + delta < w ? lane + delta : lane;
  });
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ::arcnet_emu::shuffle(mask, v, [&](unsigned lane) {
    unsigned const w = static_cast<unsigned>(width), other = lane ^ static_cast<unsigned>(lane_mask);
    return other / w == lane / w ? other : lane;
  });
}
template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return ::arcnet_emu::shuffle(mask, v, [&](unsigned lane) {
    unsigned const w = static_cast<unsigned>(width);
    return lane / w * w + static_cast<unsigned>(src) % w;
  });
}

/// The emulator's kernel launch (see ARCNET_CUDA_KERNEL in arcnet/core/cuda.hpp).
#define ARCNET_CUDA_KERNEL(grid, block, shared_bytes, stream, ...)                                     \
  ::arcnet_emu::make_launcher(::arcnet_emu::as_dim3(grid), ::arcnet_emu::as_dim3(block), (shared_bytes), \
                              (stream), #__VA_ARGS__, [](auto const&... a) { __VA_ARGS__(a...); })
