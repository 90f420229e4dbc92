// Winograd F(4x4, 3x3) convolution with a fused epilogue, for float32 channels-last tensors on x86-64 with AVX2.
//
// Why Winograd: the reconstructor is a stack of 3x3, stride-1, 64-channel convolutions, and oneDNN already runs
// those near the CPU's peak. F(4x4, 3x3) computes a 4x4 output tile from a 6x6 input tile with 36 channel
// contractions instead of 144 (4x fewer multiply-adds); the transforms are cheap and, processed a few dozen tiles
// at a time, stay in cache. The epilogue (per-sample output scale, bias, leaky ReLU, residual add, gains) runs on
// the tile while it is still in registers, so no extra pass over the activations is needed.
//
// winograd_avx2.cpp implements it (compiled with -mavx2 -mfma, nothing from ATen, so no AVX2 code can leak into
// inline functions shared with the rest of the library). Two callers check the CPU at run time before calling in
// and split the work over threads: conv3x3.cpp (the torch op, ATen's thread pool) and ort_conv3x3.cpp (the ONNX
// Runtime custom op, ORT's intra-op pool).
#pragma once

#include <cstdint>

namespace lway::winograd {

constexpr int64_t kTileOut = 4;       // output tile side
constexpr int64_t kTileIn = 6;        // input tile side (4 + 3 - 1)
constexpr int64_t kPoints = 36;       // 6 x 6 transform points = independent channel contractions per tile
constexpr int64_t kLanes = 16;        // output channels per GEMM micro-kernel column block (two AVX2 registers)
constexpr int64_t kRows = 6;          // tiles per GEMM micro-kernel call
constexpr int64_t kBlockTiles = 24;   // tiles per work item: input and product buffers stay in L2

// Everything one convolution call needs. Tensors are channels-last (N, H, W, channels) and contiguous.
struct ConvArgs {
  const float* x;            // input (N, H, W, C)
  const float* u;            // transformed weights from transform_weights: [36][K_blocks][C][16]
  const float* in_scale;     // per-sample input-channel scale (N or 1, C), or nullptr
  int64_t in_scale_stride;   // 0 when one scale row is shared by the batch, else C
  const float* out_scale;    // per-sample output-channel scale (N or 1, K), or nullptr
  int64_t out_scale_stride;  // 0 or K
  const float* bias;         // (K), or nullptr
  const float* residual;     // (N, H, W, K) added before res_gain, or nullptr
  float* y;                  // output (N, H, W, K)
  uint8_t* mask;             // (N, H, W, K): 1 where the pre-activation is > 0 (act only); nullptr: not kept
  int64_t n, h, w, c, k;
  bool act;
  float negative_slope, act_gain, res_gain;
};

// y = res_gain * (residual + act(out_scale * conv3x3(in_scale * x, weight) + bias)), zero padding 1, stride 1,
// where act(z) = (z > 0 ? z : z * negative_slope) * act_gain when args.act, else z.

int64_t weight_floats(int64_t k, int64_t c);                 // size of the transformed-weight buffer
void transform_weights(const float* weight, int64_t k, int64_t c, float* u);  // weight (K, C, 3, 3) -> u
int64_t tile_blocks(const ConvArgs& args);                   // number of work items
int64_t workspace_floats(const ConvArgs& args);              // scratch floats one thread needs
void run_blocks(const ConvArgs& args, int64_t begin, int64_t end, float* workspace);  // work items [begin, end)

}  // namespace lway::winograd
