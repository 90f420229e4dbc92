// lway::conv3x3_fused: one block of the reconstructor as a single op, and what its backward needs.
//
//   y = res_gain * (residual + act(out_scale[n, k] * conv3x3(in_scale[n, c] * x, weight) + bias[k]))
//   act(z) = (z > 0 ? z : negative_slope * z) * act_gain   (or z itself when act is false)
//
// Why this shape: a StyleGAN2 modulated convolution conv(x, weight * style[c] * demod[k]) equals
// demod[k] * conv(style[c] * x, weight), so with the per-sample style and demodulation passed as in_scale and
// out_scale every sample of a batch shares one weight: a plain convolution instead of a grouped one, and nothing
// per-sample to recompute each step. Returns y and a bool mask (z > 0) that the backward needs (empty unless act);
// both are channels-last, the layout the CPU kernel reads and writes.
//
// The backward to x is the same op again: grad_x = res_gain * (grad_y [residual] + in_scale * conv3x3(g, weight^T))
// with g = conv3x3_act_backward(grad_y, mask, out_scale) and weight^T the flipped, transposed kernel (conv3x3 with
// padding 1 is its own adjoint up to that). Gradients to the weight and scales are not provided: R is frozen
// during adaptation, and pre-training keeps the PyTorch reference path (lway_engine/reconstruction/fused.py).
//
// CPU: float32 on an AVX2+FMA processor runs the Winograd F(4x4, 3x3) kernel (winograd.h); everything else runs
// the composite of ATen ops below, which is also the definition the kernels are tested against.
#include "conv3x3.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/where.h>
#include <torch/library.h>

#ifdef LWAY_WINOGRAD_AVX2
#include "winograd.h"
#endif

namespace lway {

std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t> check_conv3x3_args(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& in_scale,
    const std::optional<at::Tensor>& out_scale, const std::optional<at::Tensor>& bias,
    const std::optional<at::Tensor>& residual) {
  constexpr const char* op = "lway::conv3x3_fused";
  TORCH_CHECK(x.dim() == 4, op, ": expected x of shape (N, C, H, W), got ", x.sizes());
  TORCH_CHECK(
      weight.dim() == 4 && weight.size(1) == x.size(1) && weight.size(2) == 3 && weight.size(3) == 3, op,
      ": expected weight of shape (K, ", x.size(1), ", 3, 3), got ", weight.sizes());
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), k = weight.size(0);
  auto check = [&](const std::optional<at::Tensor>& t, const char* name, at::IntArrayRef allowed) {
    if (!t.has_value()) return;
    TORCH_CHECK(t->device() == x.device() && t->scalar_type() == x.scalar_type(), op, ": ", name,
                " must have x's device and dtype (", x.device(), ", ", x.scalar_type(), "), got ", t->device(), ", ",
                t->scalar_type());
    TORCH_CHECK(t->sizes() == allowed, op, ": expected ", name, " of shape ", allowed, ", got ", t->sizes());
  };
  TORCH_CHECK(weight.device() == x.device() && weight.scalar_type() == x.scalar_type(), op,
              ": weight must have x's device and dtype");
  auto check_scale = [&](const std::optional<at::Tensor>& t, const char* name, int64_t channels) {
    if (t.has_value() && t->dim() == 2 && t->size(0) == 1) {
      check(t, name, {1, channels});
    } else {
      check(t, name, {n, channels});
    }
  };
  check_scale(in_scale, "in_scale", c);
  check_scale(out_scale, "out_scale", k);
  check(bias, "bias", {k});
  check(residual, "residual", {n, k, h, w});
  return {n, c, h, w, k};
}

at::Tensor per_sample_channel(const at::Tensor& scale) { return scale.view({scale.size(0), scale.size(1), 1, 1}); }

namespace {

constexpr auto kChannelsLast = at::MemoryFormat::ChannelsLast;

// The definition, in ATen ops: any dtype, any device.
std::tuple<at::Tensor, at::Tensor> conv3x3_composite(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& in_scale,
    const std::optional<at::Tensor>& out_scale, const std::optional<at::Tensor>& bias,
    const std::optional<at::Tensor>& residual, bool act, double negative_slope, double act_gain, double res_gain) {
  const at::Tensor xs = in_scale.has_value() ? x * per_sample_channel(*in_scale) : x;
  at::Tensor z = at::conv2d(xs, weight, {}, 1, 1);
  if (out_scale.has_value()) z = z * per_sample_channel(*out_scale);
  if (bias.has_value()) z = z + bias->view({1, -1, 1, 1});
  at::Tensor mask = at::empty({0}, x.options().dtype(at::kBool));
  if (act) {
    mask = (z > 0).contiguous(kChannelsLast);
    z = at::where(mask, z, z * negative_slope) * act_gain;
  }
  at::Tensor y = (residual.has_value() ? *residual + z : z) * res_gain;
  return {y.contiguous(kChannelsLast), mask};
}

#ifdef LWAY_WINOGRAD_AVX2
bool cpu_has_avx2_fma() {
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
}

std::tuple<at::Tensor, at::Tensor> conv3x3_winograd(
    const at::Tensor& x, const at::Tensor& packed, const std::optional<at::Tensor>& in_scale,
    const std::optional<at::Tensor>& out_scale, const std::optional<at::Tensor>& bias,
    const std::optional<at::Tensor>& residual, bool act, double negative_slope, double act_gain, double res_gain,
    int64_t k) {
  const at::Tensor xc = x.contiguous(kChannelsLast);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  at::Tensor y = at::empty({n, k, h, w}, x.options().memory_format(kChannelsLast));
  at::Tensor mask = act ? at::empty({n, k, h, w}, x.options().dtype(at::kBool).memory_format(kChannelsLast))
                        : at::empty({0}, x.options().dtype(at::kBool));
  // Keep the contiguous copies alive for the whole call.
  const at::Tensor is = in_scale.has_value() ? in_scale->contiguous() : at::Tensor();
  const at::Tensor os = out_scale.has_value() ? out_scale->contiguous() : at::Tensor();
  const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
  const at::Tensor r = residual.has_value() ? residual->contiguous(kChannelsLast) : at::Tensor();
  winograd::ConvArgs args{};
  args.x = xc.const_data_ptr<float>();
  args.u = packed.const_data_ptr<float>();
  args.in_scale = is.defined() ? is.const_data_ptr<float>() : nullptr;
  args.in_scale_stride = is.defined() && is.size(0) > 1 ? c : 0;
  args.out_scale = os.defined() ? os.const_data_ptr<float>() : nullptr;
  args.out_scale_stride = os.defined() && os.size(0) > 1 ? k : 0;
  args.bias = b.defined() ? b.const_data_ptr<float>() : nullptr;
  args.residual = r.defined() ? r.const_data_ptr<float>() : nullptr;
  args.y = y.mutable_data_ptr<float>();
  args.mask = act ? reinterpret_cast<uint8_t*>(mask.mutable_data_ptr<bool>()) : nullptr;
  args.n = n, args.h = h, args.w = w, args.c = c, args.k = k;
  args.act = act;
  args.negative_slope = static_cast<float>(negative_slope);
  args.act_gain = static_cast<float>(act_gain);
  args.res_gain = static_cast<float>(res_gain);
  if (y.numel() == 0) return {y, mask};
  const int64_t scratch = winograd::workspace_floats(args);
  at::parallel_for(0, winograd::tile_blocks(args), 1, [&](int64_t begin, int64_t end) {
    at::Tensor workspace = at::empty({scratch}, x.options());  // run_blocks zeroes what it reads unwritten
    winograd::run_blocks(args, begin, end, workspace.mutable_data_ptr<float>());
  });
  return {y, mask};
}
#endif

// The Winograd kernel's transformed weights; an empty tensor where that kernel is not available.
at::Tensor conv3x3_pack_cpu(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 4 && weight.size(2) == 3 && weight.size(3) == 3,
              "lway::conv3x3_pack: expected weight of shape (K, C, 3, 3), got ", weight.sizes());
#ifdef LWAY_WINOGRAD_AVX2
  if (weight.scalar_type() == at::kFloat && cpu_has_avx2_fma()) {
    const at::Tensor wc = weight.contiguous();
    at::Tensor u = at::empty({winograd::weight_floats(weight.size(0), weight.size(1))}, weight.options());
    winograd::transform_weights(wc.const_data_ptr<float>(), weight.size(0), weight.size(1),
                                u.mutable_data_ptr<float>());
    return u;
  }
#endif
  return at::empty({0}, weight.options());
}

std::tuple<at::Tensor, at::Tensor> conv3x3_fused_cpu(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& packed,
    const std::optional<at::Tensor>& /*packed_adjoint: used by the backward*/,
    const std::optional<at::Tensor>& in_scale, const std::optional<at::Tensor>& out_scale,
    const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& residual, bool act,
    double negative_slope, double act_gain, double res_gain) {
  const auto [n, c, h, w, k] = check_conv3x3_args(x, weight, in_scale, out_scale, bias, residual);
#ifdef LWAY_WINOGRAD_AVX2
  if (x.scalar_type() == at::kFloat && cpu_has_avx2_fma()) {
    // `packed`, when given, is conv3x3_pack(weight) computed once by the caller (the weights are frozen).
    const bool usable = packed.has_value() && packed->numel() == winograd::weight_floats(k, c);
    const at::Tensor u = usable ? *packed : conv3x3_pack_cpu(weight);
    return conv3x3_winograd(x, u, in_scale, out_scale, bias, residual, act, negative_slope, act_gain, res_gain, k);
  }
#endif
  return conv3x3_composite(x, weight, in_scale, out_scale, bias, residual, act, negative_slope, act_gain, res_gain);
}

// One pixel's K channels of the gradient at the convolution's output; specialised so the loop vectorises.
// The mask is read as bytes and blended arithmetically (0/1 -> negative/positive, exactly): a select on a bool load keeps
// GCC from vectorising the loop.
template <bool kMask, bool kScale>
void act_backward_row(const float* __restrict__ grad, const uint8_t* __restrict__ mask,
                      const float* __restrict__ scale, float* __restrict__ out, int64_t k, float positive,
                      float negative) {
  for (int64_t i = 0; i < k; ++i) {
    float g = grad[i];
    if constexpr (kMask) {
      const float m = static_cast<float>(mask[i]);  // exactly 0 or 1, so one term is exact and the other zero
      g *= m * positive + (1.f - m) * negative;
    }
    if constexpr (kScale) g *= scale[i];
    out[i] = g;
  }
}

// g = grad_y * (mask ? act_gain : negative_slope * act_gain) * out_scale: the gradient at the convolution's output,
// in one pass (float32) or as ATen ops (other dtypes).
at::Tensor conv3x3_act_backward_cpu(const at::Tensor& grad_y, const std::optional<at::Tensor>& mask,
                                    const std::optional<at::Tensor>& out_scale, double negative_slope,
                                    double act_gain) {
  constexpr const char* op = "lway::conv3x3_act_backward";
  TORCH_CHECK(grad_y.dim() == 4, op, ": expected grad_y of shape (N, K, H, W), got ", grad_y.sizes());
  TORCH_CHECK(!mask.has_value() || (mask->sizes() == grad_y.sizes() && mask->scalar_type() == at::kBool), op,
              ": expected a bool mask of grad_y's shape ", grad_y.sizes());
  const int64_t n = grad_y.size(0), k = grad_y.size(1);
  TORCH_CHECK(!out_scale.has_value() || (out_scale->dim() == 2 && (out_scale->size(0) == n || out_scale->size(0) == 1) &&
                                         out_scale->size(1) == k),
              op, ": expected out_scale of shape (N or 1, ", k, ")");
  if (grad_y.scalar_type() != at::kFloat) {
    at::Tensor g = grad_y;
    if (mask.has_value()) g = at::where(*mask, grad_y * act_gain, grad_y * (negative_slope * act_gain));
    if (out_scale.has_value()) g = g * per_sample_channel(*out_scale);
    return g.contiguous(kChannelsLast);
  }
  const at::Tensor gc = grad_y.contiguous(kChannelsLast);
  const at::Tensor mc = mask.has_value() ? mask->contiguous(kChannelsLast) : at::Tensor();
  const at::Tensor sc = out_scale.has_value() ? out_scale->contiguous() : at::Tensor();
  at::Tensor out = at::empty(grad_y.sizes(), grad_y.options().memory_format(kChannelsLast));
  const int64_t per_sample = grad_y.size(2) * grad_y.size(3), pixels = n * per_sample;
  const int64_t scale_stride = sc.defined() && sc.size(0) > 1 ? k : 0;
  const float* gd = gc.const_data_ptr<float>();
  const auto* md = mc.defined() ? reinterpret_cast<const uint8_t*>(mc.const_data_ptr<bool>()) : nullptr;
  const float* sd = sc.defined() ? sc.const_data_ptr<float>() : nullptr;
  float* od = out.mutable_data_ptr<float>();
  const auto positive = static_cast<float>(act_gain), negative = static_cast<float>(negative_slope * act_gain);
  using Row = void (*)(const float*, const uint8_t*, const float*, float*, int64_t, float, float);
  const Row row = md ? (sd ? &act_backward_row<true, true> : &act_backward_row<true, false>)
                     : (sd ? &act_backward_row<false, true> : &act_backward_row<false, false>);
  at::parallel_for(0, pixels, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, k)), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t offset = p * k;
      row(gd + offset, md ? md + offset : nullptr, sd ? sd + p / per_sample * scale_stride : nullptr, od + offset, k,
          positive, negative);
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(lway, m) {
  m.def("conv3x3_pack(Tensor weight) -> Tensor", {at::Tag::pt2_compliant_tag});
  m.def(
      "conv3x3_fused(Tensor x, Tensor weight, Tensor? packed, Tensor? packed_adjoint, Tensor? in_scale, "
      "Tensor? out_scale, Tensor? bias, "
      "Tensor? residual, bool act, float negative_slope, float act_gain, float res_gain) -> (Tensor, Tensor)",
      {at::Tag::pt2_compliant_tag});
  m.def(
      "conv3x3_act_backward(Tensor grad_y, Tensor? mask, Tensor? out_scale, float negative_slope, "
      "float act_gain) -> Tensor",
      {at::Tag::pt2_compliant_tag});
}

TORCH_LIBRARY_IMPL(lway, CPU, m) {
  m.impl("conv3x3_pack", &conv3x3_pack_cpu);
  m.impl("conv3x3_fused", &conv3x3_fused_cpu);
  m.impl("conv3x3_act_backward", &conv3x3_act_backward_cpu);
}

}  // namespace lway
