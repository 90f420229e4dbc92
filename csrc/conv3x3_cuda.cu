// CUDA kernels of lway::conv3x3_fused and lway::conv3x3_act_backward (definitions in conv3x3.cpp).
//
// On the GPU the convolution itself stays with cuDNN (at::conv2d), which is hard to beat there; what the op adds
// is the rest of the block in one pass. Eager PyTorch runs a modulated block as a grouped convolution with
// per-sample weights (rebuilt every step) followed by separate bias, leaky-ReLU, add and scale kernels; here the
// batch shares one weight (modulation enters as an input-channel scale and an output-channel scale) and a single
// elementwise kernel does scale, bias, activation, mask, residual and gain. Built only when CMake finds a CUDA
// compiler and torch is a CUDA build (CMakeLists.txt).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <algorithm>

#include "conv3x3.h"

namespace lway {
namespace {

constexpr auto kChannelsLast = at::MemoryFormat::ChannelsLast;
constexpr int kThreads = 256;

// Channels-last element i is channel i % k of sample i / (h * w * k).
template <typename scalar_t>
__global__ void epilogue_kernel(const scalar_t* __restrict__ conv, const scalar_t* __restrict__ out_scale,
                                int64_t scale_stride, const scalar_t* __restrict__ bias,
                                const scalar_t* __restrict__ residual, scalar_t* __restrict__ y,
                                bool* __restrict__ mask, int64_t numel, int64_t k, int64_t sample, bool act,
                                float slope, float gain, float res_gain) {
  using opmath_t = at::opmath_type<scalar_t>;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t channel = i % k;
    opmath_t z = static_cast<opmath_t>(conv[i]);
    if (out_scale) z *= static_cast<opmath_t>(out_scale[i / sample * scale_stride + channel]);
    if (bias) z += static_cast<opmath_t>(bias[channel]);
    if (act) {
      const bool positive = z > opmath_t(0);
      mask[i] = positive;
      z = (positive ? z : z * slope) * gain;
    }
    if (residual) z += static_cast<opmath_t>(residual[i]);
    y[i] = static_cast<scalar_t>(z * res_gain);
  }
}

template <typename scalar_t>
__global__ void act_backward_kernel(const scalar_t* __restrict__ grad, const bool* __restrict__ mask,
                                    const scalar_t* __restrict__ out_scale, int64_t scale_stride,
                                    scalar_t* __restrict__ out, int64_t numel, int64_t k, int64_t sample,
                                    float positive, float negative) {
  using opmath_t = at::opmath_type<scalar_t>;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    opmath_t g = static_cast<opmath_t>(grad[i]);
    if (mask) g *= mask[i] ? positive : negative;
    if (out_scale) g *= static_cast<opmath_t>(out_scale[i / sample * scale_stride + i % k]);
    out[i] = static_cast<scalar_t>(g);
  }
}

// Enough blocks to fill the GPU (a grid-stride loop covers the rest). Only c10/CUDA runtime headers are used, not
// ATen/cuda/CUDAContext.h, which needs the cuBLAS/cuSPARSE headers that a minimal toolkit may not have.
unsigned blocks_for(int64_t numel) {
  const int64_t wanted = (numel + kThreads - 1) / kThreads;
  int device = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t cap = sms * 32LL;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(wanted, cap)));
}

std::tuple<at::Tensor, at::Tensor> conv3x3_fused_cuda(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& /*packed: CPU only*/,
    const std::optional<at::Tensor>& /*packed_adjoint*/, const std::optional<at::Tensor>& in_scale,
    const std::optional<at::Tensor>& out_scale, const std::optional<at::Tensor>& bias,
    const std::optional<at::Tensor>& residual, bool act, double negative_slope, double act_gain, double res_gain) {
  const auto [n, c, h, w, k] = check_conv3x3_args(x, weight, in_scale, out_scale, bias, residual);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xs = in_scale.has_value() ? x * per_sample_channel(*in_scale) : x;
  const at::Tensor conv = at::conv2d(xs.contiguous(kChannelsLast), weight, {}, 1, 1).contiguous(kChannelsLast);
  at::Tensor y = at::empty({n, k, h, w}, x.options().memory_format(kChannelsLast));
  at::Tensor mask = act ? at::empty({n, k, h, w}, x.options().dtype(at::kBool).memory_format(kChannelsLast))
                        : at::empty({0}, x.options().dtype(at::kBool));
  const at::Tensor os = out_scale.has_value() ? out_scale->contiguous() : at::Tensor();
  const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
  const at::Tensor r = residual.has_value() ? residual->contiguous(kChannelsLast) : at::Tensor();
  const int64_t numel = y.numel();
  if (numel == 0) return {y, mask};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "lway::conv3x3_fused_cuda", [&] {
    epilogue_kernel<scalar_t><<<blocks_for(numel), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        conv.const_data_ptr<scalar_t>(), os.defined() ? os.const_data_ptr<scalar_t>() : nullptr,
        os.defined() && os.size(0) > 1 ? k : 0, b.defined() ? b.const_data_ptr<scalar_t>() : nullptr,
        r.defined() ? r.const_data_ptr<scalar_t>() : nullptr, y.mutable_data_ptr<scalar_t>(),
        act ? mask.mutable_data_ptr<bool>() : nullptr, numel, k, h * w * k, act, static_cast<float>(negative_slope),
        static_cast<float>(act_gain), static_cast<float>(res_gain));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {y, mask};
}

at::Tensor conv3x3_act_backward_cuda(const at::Tensor& grad_y, const std::optional<at::Tensor>& mask,
                                     const std::optional<at::Tensor>& out_scale, double negative_slope,
                                     double act_gain) {
  TORCH_CHECK(grad_y.dim() == 4, "lway::conv3x3_act_backward: expected grad_y of shape (N, K, H, W), got ",
              grad_y.sizes());
  TORCH_CHECK(!mask.has_value() || (mask->sizes() == grad_y.sizes() && mask->scalar_type() == at::kBool),
              "lway::conv3x3_act_backward: expected a bool mask of grad_y's shape ", grad_y.sizes());
  const c10::cuda::CUDAGuard guard(grad_y.device());
  const int64_t k = grad_y.size(1);
  const at::Tensor g = grad_y.contiguous(kChannelsLast);
  const at::Tensor m = mask.has_value() ? mask->contiguous(kChannelsLast) : at::Tensor();
  const at::Tensor os = out_scale.has_value() ? out_scale->contiguous() : at::Tensor();
  at::Tensor out = at::empty(grad_y.sizes(), grad_y.options().memory_format(kChannelsLast));
  const int64_t numel = out.numel();
  if (numel == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_y.scalar_type(), "lway::conv3x3_act_backward", [&] {
    act_backward_kernel<scalar_t><<<blocks_for(numel), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        g.const_data_ptr<scalar_t>(), m.defined() ? m.const_data_ptr<bool>() : nullptr,
        os.defined() ? os.const_data_ptr<scalar_t>() : nullptr, os.defined() && os.size(0) > 1 ? k : 0,
        out.mutable_data_ptr<scalar_t>(), numel, k, grad_y.size(2) * grad_y.size(3) * k,
        static_cast<float>(act_gain), static_cast<float>(negative_slope * act_gain));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor conv3x3_pack_cuda(const at::Tensor& weight) { return at::empty({0}, weight.options()); }

}  // namespace

TORCH_LIBRARY_IMPL(lway, CUDA, m) {
  m.impl("conv3x3_pack", &conv3x3_pack_cuda);
  m.impl("conv3x3_fused", &conv3x3_fused_cuda);
  m.impl("conv3x3_act_backward", &conv3x3_act_backward_cuda);
}

}  // namespace lway
