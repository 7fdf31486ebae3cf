// The fused SGD step of jsgd.apply_gradients on the CPU: one XLA FFI custom
// call for a group of float32 leaves, which reads each parameter, gradient and
// velocity once and writes the parameter and velocity in place.
//
// The arithmetic is jsgd's unfused chain's, operation for operation and in
// float32 (built with -ffp-contract=off, so no fused multiply-adds), so the
// results are bitwise those of update + apply_updates run op by op. Per
// element, with the step's scalars s = [minus_lr, m, gain, minus_lr_wd,
// grad_scale, wd]:
//
//   gradient (clip, maximize):             g = g * grad_scale
//   coupled weight decay (torch):          g = g + w * wd
//   Keras rule (lr inside the velocity):   u = g * minus_lr
//                                          v = m * v + gain * u
//                                          o = nesterov ? m * v + u : v
//   optax / torch rule:                    v = m * v + gain * g
//                                          o = (nesterov ? m * v + g : v) * minus_lr
//   no momentum:                           o = g * minus_lr
//   decoupled weight decay (Keras 3):      o = o + minus_lr_wd * w
//                                          w = w + o
//
// grad_scale is the clip's scale c / max(N, c), negated for torch's maximize
// (exact: (g * c) * -1 == g * -c), and 1 otherwise (g * 1 == g). A bfloat16
// velocity is computed in float32 and rounded to nearest even when stored; the
// step then reads the rounded value, as the unfused chain does.
//
// Arguments: the scalars (float32[6]), then the n parameters, the n gradients
// and (with momentum) the n velocities; results: the n parameters, then the n
// velocities. jsgd aliases each result to its input, so with donated buffers
// the step is in place. The work is split into chunks of 64 Ki elements, taken
// in turn by the calling thread and by tasks on XLA's intra-op thread pool.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kMomentum = 1;
constexpr int64_t kNesterov = 2;
constexpr int64_t kLrInVelocity = 4;
constexpr int64_t kDecoupledDecay = 8;
constexpr int64_t kCoupledDecay = 16;
constexpr int64_t kBf16Velocity = 32;
constexpr int64_t kScalars = 6;
constexpr int64_t kChunk = 1 << 16;

struct Scalars {
  float minus_lr, m, gain, minus_lr_wd, grad_scale, wd;
};

// bfloat16 as its 16 bits: XLA's conversions (round to nearest even, NaN kept).
inline float FromBf16(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float x;
  std::memcpy(&x, &wide, sizeof x);
  return x;
}

inline uint16_t ToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it a (quiet) NaN
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

struct F32 {
  using Storage = float;
  static float Load(float x) { return x; }
  static float Store(float x) { return x; }
};

struct Bf16 {
  using Storage = uint16_t;
  static float Load(uint16_t x) { return FromBf16(x); }
  static uint16_t Store(float x) { return ToBf16(x); }
};

// A leaf's buffers. XLA hands each aliased result the buffer of its operand
// (copying the operand first when it was not donated), so the step reads and
// writes through one pointer: two that are equal would make the compiler's
// overlap check pick its scalar loop. `p_in`/`v_in` are the operands, copied
// into the results in the (unexpected) case that they differ.
struct Leaf {
  const float* g;
  float* p;
  void* v;
  const float* p_in;
  const void* v_in;
  int64_t size;
};

// The loop is compiled for SSE2 (the x86-64 baseline), AVX2 and AVX-512,
// and the loader picks the widest the CPU has (GNU ifunc, Linux only). The
// width matters for the bfloat16 conversions and where the buffers sit in
// the last-level cache (on a 2-core Zen 4, SSE2 took 1.6x AVX-512's time for
// a 1M-element momentum step with a bfloat16 velocity, 1.2x at 10M); once a
// float32 step streams from DRAM every width is level. Each clone rounds
// identically: the same IEEE float32 operations, no FMAs.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define JSGD_WIDEST_VECTORS \
  __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define JSGD_WIDEST_VECTORS
#endif

// The loop, its buffers restrict-qualified parameters (GCC honours restrict
// on parameters, not on local pointers) and its scalars values, so that it is
// vectorized without a runtime overlap check.
template <bool kHasMomentum, bool kIsNesterov, bool kKeras, bool kCoupled,
          bool kDecoupled, typename V>
JSGD_WIDEST_VECTORS void Loop(const float* __restrict g,
                              float* __restrict p,
                              typename V::Storage* __restrict v, int64_t n,
                              const Scalars s) {
  using Storage = typename V::Storage;
  for (int64_t i = 0; i < n; ++i) {
    const float w = p[i];
    float grad = g[i] * s.grad_scale;
    if constexpr (kCoupled) grad = grad + w * s.wd;
    float o;
    if constexpr (!kHasMomentum) {
      o = grad * s.minus_lr;
    } else if constexpr (kKeras) {
      const float u = grad * s.minus_lr;
      const Storage stored = V::Store(s.m * V::Load(v[i]) + s.gain * u);
      v[i] = stored;
      const float vn = V::Load(stored);
      o = kIsNesterov ? s.m * vn + u : vn;
    } else {
      const Storage stored = V::Store(s.m * V::Load(v[i]) + s.gain * grad);
      v[i] = stored;
      const float vn = V::Load(stored);
      o = (kIsNesterov ? s.m * vn + grad : vn) * s.minus_lr;
    }
    if constexpr (kDecoupled) o = o + s.minus_lr_wd * w;
    p[i] = w + o;
  }
}

template <bool kHasMomentum, bool kIsNesterov, bool kKeras, bool kCoupled,
          bool kDecoupled, typename V>
void Step(const Leaf& leaf, int64_t begin, int64_t end, const Scalars& s) {
  using Storage = typename V::Storage;
  const int64_t n = end - begin;
  if (leaf.p_in != leaf.p) {
    std::memcpy(leaf.p + begin, leaf.p_in + begin, n * sizeof(float));
  }
  Storage* v = kHasMomentum ? static_cast<Storage*>(leaf.v) + begin : nullptr;
  if (kHasMomentum && leaf.v_in != leaf.v) {
    std::memcpy(v, static_cast<const Storage*>(leaf.v_in) + begin,
                n * sizeof(Storage));
  }
  Loop<kHasMomentum, kIsNesterov, kKeras, kCoupled, kDecoupled, V>(
      leaf.g + begin, leaf.p + begin, v, n, s);
}

using StepFn = void (*)(const Leaf&, int64_t, int64_t, const Scalars&);

// The flags, one template parameter at a time.
template <bool kHasMomentum, bool kIsNesterov, bool kKeras, bool kCoupled,
          bool kDecoupled>
StepFn WithVelocity(int64_t flags) {
  if (flags & kBf16Velocity) {
    return Step<kHasMomentum, kIsNesterov, kKeras, kCoupled, kDecoupled, Bf16>;
  }
  return Step<kHasMomentum, kIsNesterov, kKeras, kCoupled, kDecoupled, F32>;
}

template <bool kHasMomentum, bool kIsNesterov, bool kKeras, bool kCoupled>
StepFn WithDecoupled(int64_t flags) {
  return (flags & kDecoupledDecay)
             ? WithVelocity<kHasMomentum, kIsNesterov, kKeras, kCoupled, true>(flags)
             : WithVelocity<kHasMomentum, kIsNesterov, kKeras, kCoupled, false>(
                   flags);
}

template <bool kHasMomentum, bool kIsNesterov, bool kKeras>
StepFn WithCoupled(int64_t flags) {
  return (flags & kCoupledDecay)
             ? WithDecoupled<kHasMomentum, kIsNesterov, kKeras, true>(flags)
             : WithDecoupled<kHasMomentum, kIsNesterov, kKeras, false>(flags);
}

StepFn Select(int64_t flags) {
  if (!(flags & kMomentum)) return WithCoupled<false, false, false>(flags);
  const bool nesterov = flags & kNesterov;
  if (flags & kLrInVelocity) {
    return nesterov ? WithCoupled<true, true, true>(flags)
                    : WithCoupled<true, false, true>(flags);
  }
  return nesterov ? WithCoupled<true, true, false>(flags)
                  : WithCoupled<true, false, false>(flags);
}

struct Chunk {
  int64_t leaf, begin, end;
};

// One call's work, shared by the calling thread and the pool's tasks. A task
// that starts after every chunk was taken returns at once; the caller waits
// only for the chunks that were taken, so it never waits on a queued task.
struct Work {
  std::vector<Leaf> leaves;
  std::vector<Chunk> chunks;
  Scalars scalars;
  StepFn step;
  unsigned int csr;  // the caller's floating-point mode (XLA flushes denormals)
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mutex;
  std::condition_variable finished;

  void Run() {
#if defined(__SSE__)
    const unsigned int saved = _mm_getcsr();
    _mm_setcsr(csr);
#endif
    const int64_t n = static_cast<int64_t>(chunks.size());
    for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
      const Chunk& c = chunks[i];
      step(leaves[c.leaf], c.begin, c.end, scalars);
      if (done.fetch_add(1) + 1 == n) {
        std::lock_guard<std::mutex> lock(mutex);
        finished.notify_all();
      }
    }
#if defined(__SSE__)
    _mm_setcsr(saved);
#endif
  }

  void Wait() {
    const int64_t n = static_cast<int64_t>(chunks.size());
    std::unique_lock<std::mutex> lock(mutex);
    finished.wait(lock, [&] { return done.load() == n; });
  }
};

ffi::Error FusedSgdImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> scalars,
                        ffi::RemainingArgs args, ffi::RemainingRets rets,
                        int64_t flags, int64_t threads) {
  if (scalars.element_count() != kScalars) {
    return ffi::Error::InvalidArgument("jsgd_fused_sgd: 6 scalars expected");
  }
  const bool momentum = flags & kMomentum;
  const size_t per_leaf = momentum ? 3 : 2;
  if (args.size() % per_leaf != 0 ||
      rets.size() != args.size() / per_leaf * (momentum ? 2 : 1)) {
    return ffi::Error::InvalidArgument("jsgd_fused_sgd: bad argument count");
  }
  auto work = std::make_shared<Work>();
  const float* sc = scalars.typed_data();
  work->scalars = Scalars{sc[0], sc[1], sc[2], sc[3], sc[4], sc[5]};
  const size_t n = args.size() / per_leaf;
  work->leaves.resize(n);
  const bool bf16 = flags & kBf16Velocity;
  for (size_t i = 0; i < n; ++i) {
    auto p = args.get<ffi::Buffer<ffi::F32>>(i);
    auto g = args.get<ffi::Buffer<ffi::F32>>(n + i);
    auto p_out = rets.get<ffi::Buffer<ffi::F32>>(i);
    if (p.has_error() || g.has_error() || p_out.has_error()) {
      return ffi::Error::InvalidArgument("jsgd_fused_sgd: float32 buffers only");
    }
    if (g->element_count() != p->element_count()) {
      return ffi::Error::InvalidArgument("jsgd_fused_sgd: shape mismatch");
    }
    Leaf leaf{g->typed_data(), (*p_out)->typed_data(), nullptr, p->typed_data(),
              nullptr, static_cast<int64_t>(p->element_count())};
    if (momentum) {
      auto v = args.get<ffi::AnyBuffer>(2 * n + i);
      auto v_out = rets.get<ffi::AnyBuffer>(n + i);
      const ffi::DataType want = bf16 ? ffi::DataType::BF16 : ffi::DataType::F32;
      if (v.has_error() || v_out.has_error() || v->element_type() != want ||
          (*v_out)->element_type() != want ||
          v->element_count() != p->element_count()) {
        return ffi::Error::InvalidArgument("jsgd_fused_sgd: bad velocity");
      }
      leaf.v_in = v->untyped_data();
      leaf.v = (*v_out)->untyped_data();
    }
    work->leaves[i] = leaf;
  }
  for (size_t i = 0; i < n; ++i) {
    for (int64_t b = 0; b < work->leaves[i].size; b += kChunk) {
      work->chunks.push_back({static_cast<int64_t>(i), b,
                              std::min(work->leaves[i].size, b + kChunk)});
    }
  }
  if (work->chunks.empty()) return ffi::Error::Success();
  work->step = Select(flags);
#if defined(__SSE__)
  work->csr = _mm_getcsr();
#else
  work->csr = 0;
#endif
  const int64_t chunks = static_cast<int64_t>(work->chunks.size());
  // As many workers as the pool has threads, the caller one of them (it may
  // be a pool thread itself: a task queued behind it finds no chunk left).
  int64_t helpers = (threads > 0 ? threads : pool.num_threads()) - 1;
  helpers = std::max<int64_t>(0, std::min<int64_t>(helpers, chunks - 1));
  for (int64_t t = 0; t < helpers; ++t) {
    pool.Schedule([work] { work->Run(); });
  }
  work->Run();
  work->Wait();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JsgdFusedSgd, FusedSgdImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .RemainingArgs()
                                  .RemainingRets()
                                  .Attr<int64_t>("flags")
                                  .Attr<int64_t>("threads"));
