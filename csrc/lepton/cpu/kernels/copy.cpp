// Data movement: casting strided copies (with a cache-blocked transpose path), fills, and the
// row gather/scatter behind advanced indexing.
#include "lepton/cpu/kernels/common.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace lepton::cpu::LEPTON_ISA {
namespace {

#if defined(__AVX2__)
// An 8x8 block of 4-byte elements: reads 8 vectors (one per source column, stride `ri` bytes)
// and writes them transposed as 8 destination rows (stride `ro` bytes).
inline void transpose8x8_4byte(const char* src, int64_t ri, char* dst, int64_t ro) {
  __m256 v[8], t[8], s[8];
  for (int k = 0; k < 8; ++k) v[k] = _mm256_loadu_ps(reinterpret_cast<const float*>(src + k * ri));
  for (int k = 0; k < 8; k += 2) {
    t[k] = _mm256_unpacklo_ps(v[k], v[k + 1]);
    t[k + 1] = _mm256_unpackhi_ps(v[k], v[k + 1]);
  }
  for (int k = 0; k < 8; k += 4) {
    s[k] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(1, 0, 1, 0));
    s[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(3, 2, 3, 2));
    s[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(1, 0, 1, 0));
    s[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int k = 0; k < 4; ++k) {
    _mm256_storeu_ps(reinterpret_cast<float*>(dst + k * ro), _mm256_permute2f128_ps(s[k], s[k + 4], 0x20));
    _mm256_storeu_ps(reinterpret_cast<float*>(dst + (k + 4) * ro), _mm256_permute2f128_ps(s[k], s[k + 4], 0x31));
  }
}
#endif

template <class Dst, class Src>
void cast_copy(const StridedIter& it) {
  for_each_segment(it, [&](int64_t n, char* const* p, const int64_t* s) {
    if (s[0] == sizeof(Dst) && s[1] == sizeof(Src)) {
      Dst* o = reinterpret_cast<Dst*>(p[0]);
      const Src* a = reinterpret_cast<const Src*>(p[1]);
      if constexpr (std::is_same_v<Dst, Src>) {
        memcpy(o, a, size_t(n) * sizeof(Dst));
      } else {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) o[i] = store<Dst>(load(a[i]));
      }
    } else {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<Dst*>(p[0] + i * s[0]) = store<Dst>(load(*reinterpret_cast<const Src*>(p[1] + i * s[1])));
    }
  });
}

// out[..., i, j] = in[..., i, j] where `out` is contiguous along j and `in` along i: walk
// square tiles so both sides stay in cache.
template <class T>
void transpose_copy(const StridedIter& it) {
  constexpr int64_t kTile = 32;
  const int nd = it.ndim;
  const int64_t rows = it.shape[nd - 2], cols = it.shape[nd - 1];
  const int64_t outer = it.numel / (rows * cols);
  const int64_t ro = it.strides[0][nd - 2], ri = it.strides[1][nd - 1];  // the strided sides
  const int64_t tiles_r = (rows + kTile - 1) / kTile, tiles_c = (cols + kTile - 1) / kTile;
  const int64_t ntiles = outer * tiles_r * tiles_c;
  parallel_range(ntiles, 4, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      int64_t o = t / (tiles_r * tiles_c), rem = t % (tiles_r * tiles_c);
      int64_t r0 = (rem / tiles_c) * kTile, c0 = (rem % tiles_c) * kTile;
      int64_t off0 = 0, off1 = 0, q = o;
      for (int d = nd - 3; d >= 0; --d) {
        int64_t i = q % it.shape[d];
        q /= it.shape[d];
        off0 += i * it.strides[0][d];
        off1 += i * it.strides[1][d];
      }
      const int64_t r1 = r0 + kTile < rows ? r0 + kTile : rows, c1 = c0 + kTile < cols ? c0 + kTile : cols;
#if defined(__AVX2__)
      if (sizeof(T) == 4 && r1 - r0 == kTile && c1 - c0 == kTile) {
        for (int64_t r = r0; r < r1; r += 8)
          for (int64_t c = c0; c < c1; c += 8)
            transpose8x8_4byte(it.data[1] + off1 + r * sizeof(T) + c * ri, ri, it.data[0] + off0 + r * ro + c * sizeof(T), ro);
        continue;
      }
#endif
      for (int64_t r = r0; r < r1; ++r) {
        T* dst = reinterpret_cast<T*>(it.data[0] + off0 + r * ro);
        const char* src = it.data[1] + off1 + r * sizeof(T);
        for (int64_t c = c0; c < c1; ++c) dst[c] = *reinterpret_cast<const T*>(src + c * ri);
      }
    }
  });
}

template <class Dst>
void copy_kernel(const StridedIter& it, DType src) {
  const int nd = it.ndim;
  if (src == dtype_of<Dst>::value && nd >= 2 && it.strides[0][nd - 1] == int64_t(sizeof(Dst)) &&
      it.strides[1][nd - 2] == int64_t(sizeof(Dst)) && it.shape[nd - 1] >= 8 && it.shape[nd - 2] >= 8)
    return transpose_copy<Dst>(it);
  LEPTON_DISPATCH_ALL(src, cast_copy<Dst, scalar_t>(it));
}

template <class T>
void fill_kernel(const StridedIter& it, Scalar value) {
  T v;
  if constexpr (is_float_v<T>)
    v = store<T>(value.to_double());
  else if constexpr (std::is_same_v<T, bool>)
    v = value.to_double() != 0;
  else
    v = T(value.to_int());
  for_each_segment(it, [&](int64_t n, char* const* p, const int64_t* s) {
    if (s[0] == sizeof(T)) {
      T* o = reinterpret_cast<T*>(p[0]);
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) o[i] = v;
    } else {
      for (int64_t i = 0; i < n; ++i) *reinterpret_cast<T*>(p[0] + i * s[0]) = v;
    }
  });
}

template <class U>
void rows_typed(const RowsArgs& a, bool scatter) {
  // Rows that are one contiguous run (index_select on dim 0, embedding-style lookups) are memcpys.
  const bool contiguous = a.ndim == 0 || (a.ndim == 1 && a.row_strides[0] == 1);
  parallel_range(a.nrows, 1 + 16384 / (a.row_numel + 1), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      U* row = reinterpret_cast<U*>(a.base) + a.offsets[r];
      U* dense = reinterpret_cast<U*>(a.dense) + r * a.row_numel;
      if (contiguous) {
        std::memcpy(scatter ? static_cast<void*>(row) : dense, scatter ? static_cast<void*>(dense) : row,
                    size_t(a.row_numel) * sizeof(U));
        continue;
      }
      int64_t idx[kMaxDims] = {};
      for (int64_t j = 0; j < a.row_numel; ++j) {
        int64_t off = 0;
        for (int d = 0; d < a.ndim; ++d) off += idx[d] * a.row_strides[d];
        if (scatter)
          row[off] = dense[j];
        else
          dense[j] = row[off];
        for (int d = a.ndim - 1; d >= 0; --d) {
          if (++idx[d] < a.row_shape[d]) break;
          idx[d] = 0;
        }
      }
    }
  });
}

void rows_kernel(const RowsArgs& a, size_t itemsize, bool scatter) {
  switch (itemsize) {
    case 1: return rows_typed<uint8_t>(a, scatter);
    case 2: return rows_typed<uint16_t>(a, scatter);
    case 4: return rows_typed<uint32_t>(a, scatter);
    default: return rows_typed<uint64_t>(a, scatter);
  }
}

}  // namespace

void fill_copy(KernelSet& set) {
#define LEPTON_FILL(ENUM, TYPE)                        \
  set.copy[int(DType::ENUM)] = &copy_kernel<TYPE>;     \
  set.fill[int(DType::ENUM)] = &fill_kernel<TYPE>;
  LEPTON_FILL(Bool, bool)
  LEPTON_FILL(UInt8, uint8_t)
  LEPTON_FILL(Int8, int8_t)
  LEPTON_FILL(Int32, int32_t)
  LEPTON_FILL(Int64, int64_t)
  LEPTON_FILL(Float16, Half)
  LEPTON_FILL(BFloat16, BFloat16)
  LEPTON_FILL(Float32, float)
  LEPTON_FILL(Float64, double)
#undef LEPTON_FILL
  set.rows = &rows_kernel;
}

}  // namespace lepton::cpu::LEPTON_ISA
