// The fused SGD step of jsgd.apply_gradients on the CPU: one XLA FFI custom
// call for every float32 leaf of a model, which reads each parameter, gradient
// and velocity once and writes the parameter and velocity in place.
//
// The arithmetic is jsgd's unfused chain's, operation for operation and in
// float32 (built with -ffp-contract=off, so no fused multiply-adds), so the
// results are bitwise those of update + apply_updates. Per element, with the
// step's scalars s = [minus_lr, m, gain, minus_lr_wd]:
//
//   Keras rule (lr inside the velocity):   u = g * minus_lr
//                                          v = m * v + gain * u
//                                          o = nesterov ? m * v + u : v
//   optax / torch rule:                    v = m * v + gain * g
//                                          o = (nesterov ? m * v + g : v) * minus_lr
//   no momentum:                           o = g * minus_lr
//   decoupled weight decay (Keras 3):      o = o + minus_lr_wd * w
//                                          w = w + o
//
// Arguments: the scalars (float32[4]), then the n parameters, the n gradients
// and (with momentum) the n velocities; results: the n parameters, then the n
// velocities. jsgd aliases each result to its input, so with donated buffers
// the step is in place. Work is split into chunks of about 64 Ki elements,
// spread over the machine's cores.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kMomentum = 1;
constexpr int64_t kNesterov = 2;
constexpr int64_t kLrInVelocity = 4;
constexpr int64_t kWeightDecay = 8;

struct Leaf {
  const float* p;
  const float* g;
  const float* v;
  float* p_out;
  float* v_out;
  int64_t size;
};

struct Scalars {
  float minus_lr, m, gain, minus_lr_wd;
};

template <bool kHasMomentum, bool kIsNesterov, bool kKeras, bool kHasDecay>
void Step(const Leaf& leaf, int64_t begin, int64_t end, const Scalars& s) {
  const float* __restrict p = leaf.p;
  const float* __restrict g = leaf.g;
  float* __restrict p_out = leaf.p_out;
  for (int64_t i = begin; i < end; ++i) {
    const float w = p[i];
    float o;
    if constexpr (!kHasMomentum) {
      o = g[i] * s.minus_lr;
    } else {
      const float* __restrict v = leaf.v;
      float* __restrict v_out = leaf.v_out;
      if constexpr (kKeras) {
        const float u = g[i] * s.minus_lr;
        const float vn = s.m * v[i] + s.gain * u;
        v_out[i] = vn;
        o = kIsNesterov ? s.m * vn + u : vn;
      } else {
        const float vn = s.m * v[i] + s.gain * g[i];
        v_out[i] = vn;
        o = (kIsNesterov ? s.m * vn + g[i] : vn) * s.minus_lr;
      }
    }
    if constexpr (kHasDecay) o = o + s.minus_lr_wd * w;
    p_out[i] = w + o;
  }
}

using StepFn = void (*)(const Leaf&, int64_t, int64_t, const Scalars&);

template <bool kHasMomentum, bool kIsNesterov, bool kKeras>
StepFn WithDecay(bool decay) {
  return decay ? Step<kHasMomentum, kIsNesterov, kKeras, true>
               : Step<kHasMomentum, kIsNesterov, kKeras, false>;
}

StepFn Select(int64_t flags) {
  const bool decay = flags & kWeightDecay;
  if (!(flags & kMomentum)) return WithDecay<false, false, false>(decay);
  const bool nesterov = flags & kNesterov;
  if (flags & kLrInVelocity) {
    return nesterov ? WithDecay<true, true, true>(decay)
                    : WithDecay<true, false, true>(decay);
  }
  return nesterov ? WithDecay<true, true, false>(decay)
                  : WithDecay<true, false, false>(decay);
}

struct Chunk {
  int leaf;
  int64_t begin, end;
};

ffi::Error FusedSgdImpl(ffi::Buffer<ffi::F32> scalars, ffi::RemainingArgs args,
                        ffi::RemainingRets rets, int64_t flags,
                        int64_t threads) {
  if (scalars.element_count() != 4) {
    return ffi::Error::InvalidArgument("jsgd_fused_sgd: 4 scalars expected");
  }
  const float* sc = scalars.typed_data();
  const Scalars s{sc[0], sc[1], sc[2], sc[3]};
  const bool momentum = flags & kMomentum;
  const size_t per_leaf = momentum ? 3 : 2;
  if (args.size() % per_leaf != 0 ||
      rets.size() != args.size() / per_leaf * (momentum ? 2 : 1)) {
    return ffi::Error::InvalidArgument("jsgd_fused_sgd: bad argument count");
  }
  const size_t n = args.size() / per_leaf;
  std::vector<Leaf> leaves(n);
  for (size_t i = 0; i < n; ++i) {
    auto p = args.get<ffi::Buffer<ffi::F32>>(i);
    auto g = args.get<ffi::Buffer<ffi::F32>>(n + i);
    auto p_out = rets.get<ffi::Buffer<ffi::F32>>(i);
    if (p.has_error() || g.has_error() || p_out.has_error()) {
      return ffi::Error::InvalidArgument("jsgd_fused_sgd: float32 buffers only");
    }
    Leaf leaf{p->typed_data(), g->typed_data(), nullptr,
              (*p_out)->typed_data(), nullptr,
              static_cast<int64_t>(p->element_count())};
    if (g->element_count() != p->element_count()) {
      return ffi::Error::InvalidArgument("jsgd_fused_sgd: shape mismatch");
    }
    if (momentum) {
      auto v = args.get<ffi::Buffer<ffi::F32>>(2 * n + i);
      auto v_out = rets.get<ffi::Buffer<ffi::F32>>(n + i);
      if (v.has_error() || v_out.has_error() ||
          v->element_count() != p->element_count()) {
        return ffi::Error::InvalidArgument("jsgd_fused_sgd: bad velocity");
      }
      leaf.v = v->typed_data();
      leaf.v_out = (*v_out)->typed_data();
    }
    leaves[i] = leaf;
  }

  // Chunks of at most kChunk elements, whole small leaves grouped by order.
  constexpr int64_t kChunk = 1 << 16;
  std::vector<Chunk> chunks;
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    for (int64_t b = 0; b < leaves[i].size; b += kChunk) {
      chunks.push_back({static_cast<int>(i), b,
                        std::min(leaves[i].size, b + kChunk)});
    }
    total += leaves[i].size;
  }
  const StepFn step = Select(flags);
  int64_t workers = threads > 0 ? threads
                                : static_cast<int64_t>(
                                      std::thread::hardware_concurrency());
  workers = std::max<int64_t>(1, std::min<int64_t>(workers, total / kChunk));
  // Contiguous runs of chunks of about equal element counts, one per worker.
  auto run = [&](int64_t w) {
    const int64_t lo = total * w / workers, hi = total * (w + 1) / workers;
    int64_t seen = 0;
    for (const Chunk& c : chunks) {
      const int64_t len = c.end - c.begin;
      const int64_t start = std::max(lo, seen), stop = std::min(hi, seen + len);
      if (start < stop) {
        step(leaves[c.leaf], c.begin + (start - seen), c.begin + (stop - seen),
             s);
      }
      seen += len;
      if (seen >= hi) break;
    }
  };
  if (workers == 1) {
    run(0);
  } else {
    std::vector<std::thread> pool;
    pool.reserve(workers - 1);
    for (int64_t w = 1; w < workers; ++w) pool.emplace_back(run, w);
    run(0);
    for (auto& t : pool) t.join();
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JsgdFusedSgd, FusedSgdImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .RemainingArgs()
                                  .RemainingRets()
                                  .Attr<int64_t>("flags")
                                  .Attr<int64_t>("threads"));
