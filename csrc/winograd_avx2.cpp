// Winograd F(4x4, 3x3) kernels (see winograd.h). Compiled with -mavx2 -mfma; called only after a run-time check.
//
// Transform matrices (Lavin & Gray 2016, interpolation points 0, +-1, +-2, infinity):
//   B^T = [4  0 -5  0  1  0]   G = [ 1/4     0     0 ]   A^T = [1  1  1  1  1  0]
//         [0 -4 -4  1  1  0]       [-1/6  -1/6  -1/6 ]         [0  1 -1  2 -2  0]
//         [0  4 -4 -1  1  0]       [-1/6   1/6  -1/6 ]         [0  1  1  4  4  0]
//         [0 -2 -1  2  1  0]       [1/24  1/12   1/6 ]         [0  1 -1  8 -8  1]
//         [0  2 -1 -2  1  0]       [1/24 -1/12   1/6 ]
//         [0  4  0 -5  0  1]       [   0     0     1 ]
// Per tile: Y = A^T [(G g G^T) . (B^T d B)] A, the elementwise product summed over input channels (a GEMM per
// transform point). Loops over channels are innermost and unit-stride, so GCC vectorises the transforms itself;
// only the GEMM micro-kernel is written with intrinsics.
#include "winograd.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace lway::winograd {
namespace {

int64_t k_blocks(int64_t k) { return (k + kLanes - 1) / kLanes; }

// Six input values d0..d5 (one per row of a tile column) -> B^T d, for `count` channels at once.
inline void input_rows(const float* const* d, float* const* out, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const float d0 = d[0][i], d1 = d[1][i], d2 = d[2][i], d3 = d[3][i], d4 = d[4][i], d5 = d[5][i];
    out[0][i] = 4.f * d0 - 5.f * d2 + d4;
    out[1][i] = -4.f * (d1 + d2) + d3 + d4;
    out[2][i] = 4.f * (d1 - d2) - d3 + d4;
    out[3][i] = 2.f * (d3 - d1) - d2 + d4;
    out[4][i] = 2.f * (d1 - d3) - d2 + d4;
    out[5][i] = 4.f * d1 - 5.f * d3 + d5;
  }
}

// Six values m0..m5 -> A^T m (four outputs), for `count` channels at once.
inline void output_rows(const float* const* m, float* const* out, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const float m0 = m[0][i], m1 = m[1][i], m2 = m[2][i], m3 = m[3][i], m4 = m[4][i], m5 = m[5][i];
    const float s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
    out[0][i] = m0 + s12 + s34;
    out[1][i] = d12 + 2.f * d34;
    out[2][i] = s12 + 4.f * s34;
    out[3][i] = d12 + 8.f * d34 + m5;
  }
}

// 6 tiles x 16 output channels of one transform point: m[r][0:16] = sum_c v[r][c] * u[c][0:16].
inline void gemm_6x16(const float* v, int64_t c, const float* u, float* m, int64_t ldm) {
  __m256 acc[kRows][2];
  for (auto& row : acc) row[0] = row[1] = _mm256_setzero_ps();
  for (int64_t i = 0; i < c; ++i) {
    const __m256 b0 = _mm256_loadu_ps(u + i * kLanes);
    const __m256 b1 = _mm256_loadu_ps(u + i * kLanes + 8);
    for (int64_t r = 0; r < kRows; ++r) {
      const __m256 a = _mm256_broadcast_ss(v + r * c + i);
      acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  for (int64_t r = 0; r < kRows; ++r) {
    _mm256_storeu_ps(m + r * ldm, acc[r][0]);
    _mm256_storeu_ps(m + r * ldm + 8, acc[r][1]);
  }
}

struct Tile {
  int64_t n, y0, x0;  // sample and top-left output pixel
};

Tile tile_at(const ConvArgs& a, int64_t t) {
  const int64_t th = (a.h + kTileOut - 1) / kTileOut, tw = (a.w + kTileOut - 1) / kTileOut;
  return {t / (th * tw), (t / tw) % th * kTileOut, t % tw * kTileOut};
}

// V[p][row][c] = in_scale * (B^T d B) for one tile, zero padding outside the image. `tmp` holds 36 * C floats.
void transform_input(const ConvArgs& a, const Tile& t, const float* zeros, float* tmp, float* v, int64_t row,
                     int64_t rows) {
  const int64_t c = a.c;
  // Step 1, down each of the six columns: tmp[i][j] = (B^T d)[i][j].
  for (int64_t j = 0; j < kTileIn; ++j) {
    const int64_t xx = t.x0 - 1 + j;
    const float* col[kTileIn];
    float* out[kTileIn];
    for (int64_t i = 0; i < kTileIn; ++i) {
      const int64_t yy = t.y0 - 1 + i;
      const bool inside = yy >= 0 && yy < a.h && xx >= 0 && xx < a.w;
      col[i] = inside ? a.x + ((t.n * a.h + yy) * a.w + xx) * c : zeros;
      out[i] = tmp + (i * kTileIn + j) * c;
    }
    input_rows(col, out, c);
  }
  // Step 2, along each row: V[i * 6 + j] = (tmp B)[i][j], then the per-channel input scale (it commutes with B).
  const float* scale = a.in_scale ? a.in_scale + t.n * a.in_scale_stride : nullptr;
  for (int64_t i = 0; i < kTileIn; ++i) {
    const float* in[kTileIn];
    float* out[kTileIn];
    for (int64_t j = 0; j < kTileIn; ++j) {
      in[j] = tmp + (i * kTileIn + j) * c;
      out[j] = v + ((i * kTileIn + j) * rows + row) * c;
    }
    input_rows(in, out, c);
    if (scale) {
      for (int64_t j = 0; j < kTileIn; ++j) {
        float* __restrict__ o = out[j];
        for (int64_t q = 0; q < c; ++q) o[q] *= scale[q];
      }
    }
  }
}

// The epilogue for one pixel's K channels, specialised on which terms are present so the loop has no branches
// and vectorises. kMask: the mask of positive pre-activations is written (training needs it, inference does not).
template <bool kScale, bool kBias, bool kAct, bool kMask, bool kResidual>
void epilogue_row(const float* __restrict__ src, const float* __restrict__ os, const float* __restrict__ bias,
                  const float* __restrict__ res, float* __restrict__ dst, uint8_t* __restrict__ mask, int64_t k,
                  float slope, float gain, float res_gain) {
  for (int64_t i = 0; i < k; ++i) {
    float z = src[i];
    if constexpr (kScale) z *= os[i];
    if constexpr (kBias) z += bias[i];
    if constexpr (kAct) {
      if constexpr (kMask) mask[i] = z > 0.f;
      z = (z > 0.f ? z : z * slope) * gain;
    }
    if constexpr (kResidual) z += res[i];
    dst[i] = z * res_gain;
  }
}

using EpilogueRow = void (*)(const float*, const float*, const float*, const float*, float*, uint8_t*, int64_t,
                             float, float, float);

// Entry i of the table is the epilogue whose flags are the bits of i (scale, bias, act, mask, residual).
template <int... kIndex>
constexpr std::array<EpilogueRow, sizeof...(kIndex)> epilogue_table(std::integer_sequence<int, kIndex...>) {
  return {&epilogue_row<(kIndex & 16) != 0, (kIndex & 8) != 0, (kIndex & 4) != 0, (kIndex & 2) != 0,
                        (kIndex & 1) != 0>...};
}

EpilogueRow pick_epilogue(const ConvArgs& a) {
  static constexpr auto table = epilogue_table(std::make_integer_sequence<int, 32>{});
  return table[(a.out_scale != nullptr) * 16 + (a.bias != nullptr) * 8 + a.act * 4 + (a.act && a.mask) * 2 +
               (a.residual != nullptr)];
}

// Output tile from the products M[p][row][0:Kp], then the epilogue, written where the tile lies inside the image.
void transform_output(const ConvArgs& a, const Tile& t, const float* m, int64_t row, int64_t rows, float* tmp,
                      EpilogueRow epilogue) {
  const int64_t k = a.k, kp = k_blocks(k) * kLanes;
  // Step 1, along each of the six rows: tmp[i][q] = (m A)[i][q], q < 4.
  for (int64_t i = 0; i < kTileIn; ++i) {
    const float* in[kTileIn];
    float* out[kTileOut];
    for (int64_t j = 0; j < kTileIn; ++j) in[j] = m + ((i * kTileIn + j) * rows + row) * kp;
    for (int64_t q = 0; q < kTileOut; ++q) out[q] = tmp + (i * kTileOut + q) * kp;
    output_rows(in, out, kp);
  }
  // Step 2, down each of the four columns: Y[p][q] = (A^T tmp)[p][q], into the last 16 rows of tmp.
  float* y = tmp + kTileIn * kTileOut * kp;
  for (int64_t q = 0; q < kTileOut; ++q) {
    const float* in[kTileIn];
    float* out[kTileOut];
    for (int64_t i = 0; i < kTileIn; ++i) in[i] = tmp + (i * kTileOut + q) * kp;
    for (int64_t p = 0; p < kTileOut; ++p) out[p] = y + (p * kTileOut + q) * kp;
    output_rows(in, out, kp);
  }
  const float* os = a.out_scale ? a.out_scale + t.n * a.out_scale_stride : nullptr;
  for (int64_t p = 0; p < kTileOut && t.y0 + p < a.h; ++p) {
    for (int64_t q = 0; q < kTileOut && t.x0 + q < a.w; ++q) {
      const int64_t pixel = ((t.n * a.h + t.y0 + p) * a.w + t.x0 + q) * k;
      epilogue(y + (p * kTileOut + q) * kp, os, a.bias, a.residual ? a.residual + pixel : nullptr, a.y + pixel,
               a.mask ? a.mask + pixel : nullptr, k, a.negative_slope, a.act_gain, a.res_gain);
    }
  }
}


}  // namespace

int64_t weight_floats(int64_t k, int64_t c) { return kPoints * k_blocks(k) * c * kLanes; }

void transform_weights(const float* weight, int64_t k, int64_t c, float* u) {
  static constexpr double g[kTileIn][3] = {{1. / 4, 0, 0},          {-1. / 6, -1. / 6, -1. / 6},
                                           {-1. / 6, 1. / 6, -1. / 6}, {1. / 24, 1. / 12, 1. / 6},
                                           {1. / 24, -1. / 12, 1. / 6}, {0, 0, 1}};
  const int64_t kb = k_blocks(k);
  std::memset(u, 0, sizeof(float) * weight_floats(k, c));  // padding lanes of the last block stay zero
  for (int64_t o = 0; o < k; ++o) {
    for (int64_t i = 0; i < c; ++i) {
      const float* w = weight + (o * c + i) * 9;
      double gw[kTileIn][3];  // G w, in double: the weights are transformed once per call
      for (int64_t r = 0; r < kTileIn; ++r)
        for (int64_t s = 0; s < 3; ++s) gw[r][s] = g[r][0] * w[s] + g[r][1] * w[3 + s] + g[r][2] * w[6 + s];
      for (int64_t r = 0; r < kTileIn; ++r) {
        for (int64_t s = 0; s < kTileIn; ++s) {
          const double value = gw[r][0] * g[s][0] + gw[r][1] * g[s][1] + gw[r][2] * g[s][2];
          u[((r * kTileIn + s) * kb + o / kLanes) * c * kLanes + i * kLanes + o % kLanes] = static_cast<float>(value);
        }
      }
    }
  }
}

int64_t tile_blocks(const ConvArgs& a) {
  const int64_t tiles = a.n * ((a.h + kTileOut - 1) / kTileOut) * ((a.w + kTileOut - 1) / kTileOut);
  return (tiles + kBlockTiles - 1) / kBlockTiles;
}

int64_t workspace_floats(const ConvArgs& a) {
  const int64_t kp = k_blocks(a.k) * kLanes;
  const int64_t v = kPoints * kBlockTiles * a.c, m = kPoints * kBlockTiles * kp;
  const int64_t tmp = std::max(kPoints * a.c, (kTileIn + kTileOut) * kTileOut * kp);
  return v + m + tmp + a.c;  // + one row of zeros for the padding
}

void run_blocks(const ConvArgs& a, int64_t begin, int64_t end, float* workspace) {
  const int64_t kb = k_blocks(a.k), kp = kb * kLanes, c = a.c;
  const int64_t tiles = a.n * ((a.h + kTileOut - 1) / kTileOut) * ((a.w + kTileOut - 1) / kTileOut);
  float* v = workspace;
  float* m = v + kPoints * kBlockTiles * c;
  float* tmp = m + kPoints * kBlockTiles * kp;
  float* zeros = tmp + std::max(kPoints * c, (kTileIn + kTileOut) * kTileOut * kp);
  std::fill(zeros, zeros + c, 0.f);
  const EpilogueRow epilogue = pick_epilogue(a);
  for (int64_t block = begin; block < end; ++block) {
    const int64_t first = block * kBlockTiles;
    const int64_t count = std::min(kBlockTiles, tiles - first);
    const int64_t rows = (count + kRows - 1) / kRows * kRows;  // GEMM rows: whole micro-kernel calls
    for (int64_t r = 0; r < count; ++r) transform_input(a, tile_at(a, first + r), zeros, tmp, v, r, rows);
    // The last block's padding rows (past `count`) are zeroed, not left uninitialised: their products are never
    // read, but garbage could hold denormals, which slow the GEMM down.
    for (int64_t p = 0; p < kPoints && count < rows; ++p) {
      std::fill(v + (p * rows + count) * c, v + (p * rows + rows) * c, 0.f);
    }
    for (int64_t p = 0; p < kPoints; ++p) {
      for (int64_t j = 0; j < kb; ++j) {
        const float* up = a.u + (p * kb + j) * c * kLanes;
        for (int64_t r = 0; r < rows; r += kRows) {
          gemm_6x16(v + (p * rows + r) * c, c, up, m + (p * rows + r) * kp + j * kLanes, kp);
        }
      }
    }
    for (int64_t r = 0; r < count; ++r) transform_output(a, tile_at(a, first + r), m, r, rows, tmp, epilogue);
  }
}

}  // namespace lway::winograd
