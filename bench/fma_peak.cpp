// The machine's float32 FMA peak: independent register-only FMA chains on every thread (enough
// of them to cover the FMA latency on two pipes). Built and run by bench/gemm.py with
// -O3 -march=native -fopenmp; prints "threads GFLOP/s" for 1..max threads, each the best of a
// few runs (a peak is a maximum: other processes can only lower it).
#include <immintrin.h>
#include <omp.h>

#include <cstdio>

#if defined(__AVX512F__)
using V = __m512;
#define FMA _mm512_fmadd_ps
#define SET1 _mm512_set1_ps
#else
using V = __m256;
#define FMA _mm256_fmadd_ps
#define SET1 _mm256_set1_ps
#endif
constexpr int kChains = 12, kLanes = sizeof(V) / 4;
constexpr long kIters = 30000000;

// Seconds for kIters rounds of kChains FMAs on each of nt threads.
double run(int nt) {
  float sink = 0;
  double t0 = omp_get_wtime();
#pragma omp parallel num_threads(nt) reduction(+ : sink)
  {
    V acc[kChains], x = SET1(1.0000001f), y = SET1(0.9999999f);
    for (int i = 0; i < kChains; ++i) acc[i] = SET1(float(i));
    for (long it = 0; it < kIters; ++it)
#pragma GCC unroll 12
      for (int i = 0; i < kChains; ++i) acc[i] = FMA(acc[i], x, y);
    for (int i = 1; i < kChains; ++i) acc[0] = FMA(acc[i], x, acc[0]);
    float out[kLanes];
    __builtin_memcpy(out, &acc[0], sizeof(out));
    sink += out[0];  // keeps the chains alive
  }
  double seconds = omp_get_wtime() - t0;
  return sink == 12345.f ? seconds + 1 : seconds;
}

int main() {
  for (int nt = 1; nt <= omp_get_max_threads(); ++nt) {
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      double gflops = 2.0 * kChains * kLanes * kIters * nt / run(nt) / 1e9;
      best = gflops > best ? gflops : best;
    }
    std::printf("%d %.1f\n", nt, best);
  }
}
