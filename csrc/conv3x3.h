// lway::conv3x3_fused: the reconstructor's modulated 3x3 convolution block as one op (see conv3x3.cpp).
// Declarations shared by the CPU (conv3x3.cpp) and CUDA (conv3x3_cuda.cu) implementations.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <tuple>

namespace lway {

// Shape and argument checks common to every backend; returns (N, C, H, W, K).
std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t> check_conv3x3_args(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& in_scale,
    const std::optional<at::Tensor>& out_scale, const std::optional<at::Tensor>& bias,
    const std::optional<at::Tensor>& residual);

// A (N or 1, channels) scale as a (N or 1, channels, 1, 1) tensor that broadcasts over an NCHW activation.
at::Tensor per_sample_channel(const at::Tensor& scale);

}  // namespace lway
