// Fused bias + leaky ReLU + gain (StyleGAN2's "fused bias act") for the CPU.
//
//   out = leaky_relu(x + bias.view(1, C, 1, ...), negative_slope) * scale
//
// Unfused, this is three memory-bound passes (add, leaky_relu, mul) and two temporaries; here it is one read of x
// and one write of out. The backward likewise reads grad_out and out once.
//
// The backward takes the forward *output*, not x + bias: since scale > 0 and negative_slope >= 0, out > 0 exactly
// when x + bias > 0, so the output carries the only bit of the input the gradient needs and autograd can save the
// tensor it already has instead of keeping x alive (or recomputing x + bias).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/accumulate.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

namespace lway {
namespace {

// View of a contiguous (N, C, *) tensor as N * C planes of `inner` elements; plane p uses bias[p % C].
struct Planes {
  int64_t count;
  int64_t channels;
  int64_t inner;
};

Planes planes_of(const at::Tensor& t) {
  return {t.size(0) * t.size(1), t.size(1), c10::multiply_integers(t.sizes().slice(2))};
}

// Elements below which splitting work across threads costs more than it saves: ATen's own value
// (at::internal::GRAIN_SIZE, which lives in the much heavier TensorIterator.h).
constexpr int64_t kGrainSize = 32768;

// Enough planes per task that each thread gets at least kGrainSize elements.
int64_t grain_for(const Planes& p) {
  return std::max<int64_t>(1, kGrainSize / std::max<int64_t>(1, p.inner));
}

// The inner loops take everything by value and through restrict-qualified parameters, so nothing the loop stores
// can alias its bound or constants; with -fno-trapping-math (CMakeLists.txt) GCC then if-converts the select into
// a vector blend and vectorises the loop, for every dtype.
// Both follow the reference's operation order, so float32/float64 results match PyTorch's unfused ops exactly.
template <typename scalar_t, typename opmath_t>
void forward_row(const scalar_t* __restrict__ x, scalar_t* __restrict__ out, int64_t n, opmath_t bias,
                 opmath_t slope, opmath_t gain) {
  for (int64_t i = 0; i < n; ++i) {
    const opmath_t v = static_cast<opmath_t>(x[i]) + bias;  // leaky_relu(x + bias) * scale
    out[i] = static_cast<scalar_t>((v > opmath_t(0) ? v : v * slope) * gain);
  }
}

template <typename scalar_t, typename opmath_t>
void backward_row(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ out,
                  scalar_t* __restrict__ grad_x, int64_t n, opmath_t slope, opmath_t gain) {
  for (int64_t i = 0; i < n; ++i) {
    const opmath_t g = static_cast<opmath_t>(grad_out[i]) * gain;  // (grad * scale), then leaky_relu_backward
    grad_x[i] = static_cast<scalar_t>(static_cast<opmath_t>(out[i]) > opmath_t(0) ? g : g * slope);
  }
}

void check_params(const char* op, double negative_slope, double scale) {
  TORCH_CHECK(
      scale > 0.0 && negative_slope >= 0.0, op, ": requires scale > 0 and negative_slope >= 0 (the backward ",
      "recovers the sign of x + bias from the sign of the output), got scale=", scale,
      ", negative_slope=", negative_slope);
}

void check_like(const char* op, const at::Tensor& x, const char* x_name, const at::Tensor& y, const char* y_name) {
  TORCH_CHECK(
      y.device() == x.device(), op, ": ", y_name, " is on ", y.device(), " but ", x_name, " is on ", x.device());
  TORCH_CHECK(
      y.scalar_type() == x.scalar_type(), op, ": ", y_name, " has dtype ", y.scalar_type(), " but ", x_name,
      " has dtype ", x.scalar_type());
}

at::Tensor bias_leaky_relu_cpu(const at::Tensor& x, const at::Tensor& bias, double negative_slope, double scale) {
  constexpr const char* op = "lway::bias_leaky_relu";
  TORCH_CHECK(x.dim() >= 2, op, ": expected x of shape (N, C, *), got shape ", x.sizes());
  TORCH_CHECK(
      bias.dim() == 1 && bias.size(0) == x.size(1), op, ": expected bias of shape (C,) = (", x.size(1),
      ",) for x of shape ", x.sizes(), ", got bias of shape ", bias.sizes());
  check_like(op, x, "x", bias, "bias");
  check_params(op, negative_slope, scale);

  const at::Tensor xc = x.contiguous();
  const at::Tensor bc = bias.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  const Planes p = planes_of(xc);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "lway::bias_leaky_relu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;  // float for half/bfloat16, otherwise scalar_t itself
    const scalar_t* xd = xc.const_data_ptr<scalar_t>();
    const scalar_t* bd = bc.const_data_ptr<scalar_t>();
    scalar_t* od = out.mutable_data_ptr<scalar_t>();
    const auto slope = static_cast<opmath_t>(negative_slope);
    const auto gain = static_cast<opmath_t>(scale);
    at::parallel_for(0, p.count, grain_for(p), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        forward_row(xd + plane * p.inner, od + plane * p.inner, p.inner,
                    static_cast<opmath_t>(bd[plane % p.channels]), slope, gain);
      }
    });
  });
  return out;
}

at::Tensor bias_leaky_relu_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& out, double negative_slope, double scale) {
  constexpr const char* op = "lway::bias_leaky_relu_backward";
  TORCH_CHECK(
      grad_out.sizes() == out.sizes(), op, ": grad_out has shape ", grad_out.sizes(), " but out has shape ",
      out.sizes());
  check_like(op, out, "out", grad_out, "grad_out");
  check_params(op, negative_slope, scale);

  const at::Tensor gc = grad_out.contiguous();
  const at::Tensor oc = out.contiguous();
  at::Tensor grad_x = at::empty(out.sizes(), out.options());

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "lway::bias_leaky_relu_backward", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t* gd = gc.const_data_ptr<scalar_t>();
    const scalar_t* od = oc.const_data_ptr<scalar_t>();
    scalar_t* rd = grad_x.mutable_data_ptr<scalar_t>();
    const auto slope = static_cast<opmath_t>(negative_slope);
    const auto gain = static_cast<opmath_t>(scale);
    // Purely elementwise (no per-channel term), so split the flat range.
    at::parallel_for(0, oc.numel(), kGrainSize, [&](int64_t begin, int64_t end) {
      backward_row(gd + begin, od + begin, rd + begin, end - begin, slope, gain);
    });
  });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY(lway, m) {
  // Fake (meta) kernels and autograd formulas are registered in Python by this module; torch imports it if a
  // fake kernel is needed while only the shared library has been loaded.
  m.set_python_module("lway_engine.ext");
  m.def(
      "bias_leaky_relu(Tensor x, Tensor bias, float negative_slope, float scale) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  m.def(
      "bias_leaky_relu_backward(Tensor grad_out, Tensor out, float negative_slope, float scale) -> Tensor",
      {at::Tag::pt2_compliant_tag});
}

TORCH_LIBRARY_IMPL(lway, CPU, m) {
  m.impl("bias_leaky_relu", &bias_leaky_relu_cpu);
  m.impl("bias_leaky_relu_backward", &bias_leaky_relu_backward_cpu);
}

}  // namespace lway
