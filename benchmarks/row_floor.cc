// The lazy momentum step of benchmarks/sparse.py written by hand in C++, to
// measure what the machine allows (no JAX, no jsgd):
//
//   g++ -O3 -march=native -o /tmp/row_floor benchmarks/row_floor.cc
//   /tmp/row_floor                 # 1,000,000 rows
//   /tmp/row_floor 1000000 32.1    # and the speedup over a 32.1 ms dense step
//
// Pass the "optax dense" median of benchmarks/sparse.py, run on the same
// machine just before, as the second argument: this program's own dense loop
// is single-threaded, so it is no fair baseline for XLA's.
//
// A rows x 64 float32 table and velocity, 4,096 indices per step of which a
// quarter repeat 64 popular rows (as benchmarks/sparse.py), momentum 0.9:
//
//   lazy:  sort the indices, sum the duplicates' values, then for each distinct
//          row i: v[i] = m*v[i] - lr*sum; w[i] += v[i]. Timed without and with
//          software prefetching of the rows a few iterations ahead.
//
// Each step draws new indices, and a table-sized buffer is streamed through the
// caches every 5 steps, as the dense steps of the Python benchmark do between
// its rounds. The ratio dense / lazy bounds what any library's lazy step can
// gain over the dense step on this machine.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

namespace {

constexpr int64_t kWidth = 64, kK = 4096, kPrefetchDistance = 8;
constexpr float kMomentum = 0.9f, kLr = 0.01f;

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<int32_t> DrawIndices(int64_t rows, std::mt19937_64& rng) {
  std::uniform_int_distribution<int32_t> row(0, int32_t(rows - 1));
  std::vector<int32_t> hot(64), indices(kK);
  for (auto& h : hot) h = row(rng);
  for (auto& i : indices) i = row(rng);
  for (int64_t j = 0; j < kK / 4; ++j) indices[j] = hot[rng() % hot.size()];
  return indices;
}

void LazyStep(float* w, float* v, const std::vector<int32_t>& indices,
              const float* values, bool prefetch, std::vector<uint64_t>& keys,
              std::vector<float>& sums, std::vector<int32_t>& unique) {
  keys.clear();
  for (int64_t j = 0; j < kK; ++j) keys.push_back(uint64_t(indices[j]) << 32 | j);
  std::sort(keys.begin(), keys.end());
  unique.clear();
  for (size_t a = 0; a < keys.size();) {
    const int32_t i = int32_t(keys[a] >> 32);
    float* sum = sums.data() + unique.size() * kWidth;
    std::fill(sum, sum + kWidth, 0.0f);
    for (; a < keys.size() && int32_t(keys[a] >> 32) == i; ++a) {
      const float* g = values + int64_t(keys[a] & 0xffffffffu) * kWidth;
      for (int64_t c = 0; c < kWidth; ++c) sum[c] += g[c];
    }
    unique.push_back(i);
  }
  const int64_t n = int64_t(unique.size());
  for (int64_t s = 0; s < n; ++s) {
    if (prefetch && s + kPrefetchDistance < n) {
      const int64_t ahead = int64_t(unique[s + kPrefetchDistance]) * kWidth;
      for (int64_t c = 0; c < kWidth; c += 16) {
        __builtin_prefetch(v + ahead + c, 1);
        __builtin_prefetch(w + ahead + c, 1);
      }
    }
    float* vr = v + int64_t(unique[s]) * kWidth;
    float* wr = w + int64_t(unique[s]) * kWidth;
    const float* sum = sums.data() + s * kWidth;
    for (int64_t c = 0; c < kWidth; ++c) {
      vr[c] = kMomentum * vr[c] - kLr * sum[c];
      wr[c] += vr[c];
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 1000000;
  const double dense = argc > 2 ? std::atof(argv[2]) : 0.0;
  const int64_t size = rows * kWidth;
  std::vector<float> w(size, 1.0f), v(size, 0.0f), flush(size);
  std::vector<float> values(kK * kWidth, 0.25f), sums(kK * kWidth);
  std::vector<uint64_t> keys;
  std::vector<int32_t> unique;
  keys.reserve(kK);
  unique.reserve(kK);
  std::mt19937_64 rng(0);

  auto time_lazy = [&](bool prefetch) {
    std::vector<double> ms;
    for (int step = 0; step < 200; ++step) {
      if (step % 5 == 0) {
        for (int64_t e = 0; e < size; e += 16) flush[e] += 1.0f;
      }
      const auto indices = DrawIndices(rows, rng);
      const auto start = Clock::now();
      LazyStep(w.data(), v.data(), indices, values.data(), prefetch, keys, sums,
               unique);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start)
                       .count());
    }
    return Median(ms);
  };
  const double plain = time_lazy(false), prefetched = time_lazy(true);
  std::printf("%lld rows x %lld, k = %lld (checksum %g)\n", (long long)rows,
              (long long)kWidth, (long long)kK, double(w[unique[0] * kWidth]));
  for (const auto& [what, ms] : {std::pair{"lazy step:", plain},
                                 std::pair{"lazy step, prefetching rows:", prefetched}}) {
    std::printf("%-30s %7.3f ms", what, ms);
    if (dense > 0) std::printf("  (%.0fx faster than %.1f ms)", dense / ms, dense);
    std::printf("\n");
  }
  return 0;
}
