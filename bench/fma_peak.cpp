// The machine's float32 FMA peak: independent register-only FMA chains on every thread (enough
// of them to cover the FMA latency on two pipes). Built and run by bench/gemm.py with
// -O3 -march=native -fopenmp; prints GFLOP/s for 1..max threads, one "threads gflops" per line.
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

int main() {
  const long iters = 100000000;
  for (int nt = 1; nt <= omp_get_max_threads(); ++nt) {
    float sink = 0;
    double t0 = omp_get_wtime();
#pragma omp parallel num_threads(nt) reduction(+ : sink)
    {
      V acc[kChains], x = SET1(1.0000001f), y = SET1(0.9999999f);
      for (int i = 0; i < kChains; ++i) acc[i] = SET1(float(i));
      for (long it = 0; it < iters; ++it)
#pragma GCC unroll 12
        for (int i = 0; i < kChains; ++i) acc[i] = FMA(acc[i], x, y);
      float out[kLanes];
      for (int i = 1; i < kChains; ++i) acc[0] = FMA(acc[i], x, acc[0]);
      __builtin_memcpy(out, &acc[0], sizeof(out));
      sink += out[0];
    }
    double seconds = omp_get_wtime() - t0;
    std::printf("%d %.1f\n", nt, 2.0 * kChains * kLanes * iters * nt / seconds / 1e9 + 0 * sink);
  }
}
