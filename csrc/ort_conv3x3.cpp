// ai.lway::Conv3x3: the Winograd F(4x4, 3x3) kernel of winograd.h as an ONNX Runtime custom op (CPU provider).
//
//   inputs  X (N, H, W, C) float32, channels-last;  W (K, C, 3, 3) and B (K): constant initializers;
//           R (N, H, W, K), optional residual
//   attrs   activation (0 none, 1 leaky ReLU), alpha (its negative slope)
//   output  Y = R + act(conv3x3(X, W, padding 1) + B), channels-last
//
// Why: ORT's own CPU convolutions are direct and already near the processor's fp32 peak; Winograd needs 4x fewer
// multiply-adds (export/ort_winograd.py rewrites a graph to use this op). The weights are transformed once, when
// ORT creates the kernel; each call splits the tiles over ORT's intra-op thread pool. The library depends on
// nothing but the C++ runtime: ORT passes in its API table (ort_api.h) when it registers the library.
#include <atomic>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "ort_api.h"
#include "winograd.h"

namespace lway {
namespace {

using ort::Api;

#define LWAY_ORT_TRY(expr)                       \
  do {                                           \
    if (OrtStatus* status_ = (expr)) return status_; \
  } while (0)

constexpr const char* kOp = "ai.lway::Conv3x3";

OrtStatus* fail(const Api& api, const std::string& message, int code = ort::kInvalidArgument) {
  return api.CreateStatus(code, (std::string(kOp) + ": " + message).c_str());
}

std::string shape_text(const std::vector<int64_t>& dims) {
  std::string text = "(";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + ")";
}

// A tensor's element type and dimensions.
struct TensorShape {
  int type = 0;
  std::vector<int64_t> dims;
};

OrtStatus* shape_of(const Api& api, const OrtValue* value, TensorShape& out) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  LWAY_ORT_TRY(api.GetTensorTypeAndShape(value, &info));
  size_t rank = 0;
  OrtStatus* status = api.GetTensorElementType(info, &out.type);
  if (!status) status = api.GetDimensionsCount(info, &rank);
  if (!status) {
    out.dims.resize(rank);
    status = api.GetDimensions(info, out.dims.data(), rank);
  }
  api.ReleaseTensorTypeAndShapeInfo(info);
  return status;
}

// The float data of a constant input of shape `expected` (-1: any size): ORT's initializer, valid while the
// kernel is being created (what the kernel keeps, it copies or transforms).
OrtStatus* constant_input(const Api& api, const OrtKernelInfo* info, size_t index, const char* name,
                          std::vector<int64_t> expected, const float*& data, std::vector<int64_t>& dims) {
  int is_constant = 0;
  const OrtValue* value = nullptr;
  LWAY_ORT_TRY(api.KernelInfoGetConstantInput_tensor(info, index, &is_constant, &value));
  if (!is_constant || value == nullptr) return fail(api, std::string(name) + " must be a constant initializer");
  TensorShape shape;
  LWAY_ORT_TRY(shape_of(api, value, shape));
  bool fits = shape.type == ort::kFloat && shape.dims.size() == expected.size();
  for (size_t i = 0; fits && i < expected.size(); ++i) fits = expected[i] < 0 || expected[i] == shape.dims[i];
  if (!fits) return fail(api, std::string(name) + " has shape " + shape_text(shape.dims) + ", expected float32 " +
                                  shape_text(expected) + " (-1: any)");
  void* raw = nullptr;
  LWAY_ORT_TRY(api.GetTensorMutableData(const_cast<OrtValue*>(value), &raw));
  data = static_cast<const float*>(raw);
  dims = shape.dims;
  return nullptr;
}

struct Kernel {
  explicit Kernel(Api a) : api(a) {}
  Api api;
  int64_t k = 0, c = 0;
  bool act = false;
  float alpha = 0.f;
  std::vector<float> u;     // winograd::transform_weights(W)
  std::vector<float> bias;  // (K)
};

bool cpu_has_avx2_fma() {
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
}

OrtStatus* create_kernel(const OrtCustomOp*, const OrtApi* table, const OrtKernelInfo* info, void** out) {
  const Api api(table);
  if (!cpu_has_avx2_fma()) {
    return fail(api, "needs an x86-64 processor with AVX2 and FMA; open the model without lway-engine's CPU kernels "
                     "(Upscaler(..., cpu_kernels=False), upscale --no-cpu-kernels)", ort::kFail);
  }
  auto kernel = std::make_unique<Kernel>(api);
  int64_t activation = 0;
  LWAY_ORT_TRY(api.KernelInfoGetAttribute_int64(info, "activation", &activation));
  LWAY_ORT_TRY(api.KernelInfoGetAttribute_float(info, "alpha", &kernel->alpha));
  kernel->act = activation != 0;
  const float* weight = nullptr;
  const float* bias = nullptr;
  std::vector<int64_t> dims;
  LWAY_ORT_TRY(constant_input(api, info, 1, "W", {-1, -1, 3, 3}, weight, dims));
  kernel->k = dims[0], kernel->c = dims[1];
  LWAY_ORT_TRY(constant_input(api, info, 2, "B", {kernel->k}, bias, dims));
  kernel->bias.assign(bias, bias + kernel->k);
  kernel->u.resize(winograd::weight_floats(kernel->k, kernel->c));
  winograd::transform_weights(weight, kernel->k, kernel->c, kernel->u.data());
  *out = kernel.release();
  return nullptr;
}

// One call's work, shared by ORT's pool threads: each runs whole tile blocks with a scratch buffer of its own.
struct Job {
  const winograd::ConvArgs* args;
  size_t workspace;
  std::atomic<bool> out_of_memory{false};
};

void run_block(void* data, size_t block) {
  auto& job = *static_cast<Job*>(data);
  thread_local std::vector<float> workspace;
  try {
    if (workspace.size() < job.workspace) workspace.resize(job.workspace);
  } catch (const std::bad_alloc&) {
    job.out_of_memory = true;
    return;
  }
  const auto b = static_cast<int64_t>(block);
  winograd::run_blocks(*job.args, b, b + 1, workspace.data());
}

OrtStatus* compute(void* state, OrtKernelContext* context) {
  const Kernel& kernel = *static_cast<const Kernel*>(state);
  const Api& api = kernel.api;
  const OrtValue* x = nullptr;
  LWAY_ORT_TRY(api.KernelContext_GetInput(context, 0, &x));
  TensorShape xs;
  LWAY_ORT_TRY(shape_of(api, x, xs));
  if (xs.type != ort::kFloat || xs.dims.size() != 4 || xs.dims[3] != kernel.c) {
    return fail(api, "X has shape " + shape_text(xs.dims) + ", expected float32 (N, H, W, " +
                         std::to_string(kernel.c) + ") channels-last");
  }
  const int64_t n = xs.dims[0], h = xs.dims[1], w = xs.dims[2];
  const std::vector<int64_t> out_dims{n, h, w, kernel.k};
  size_t inputs = 0;
  LWAY_ORT_TRY(api.KernelContext_GetInputCount(context, &inputs));
  const OrtValue* residual = nullptr;
  if (inputs > 3) LWAY_ORT_TRY(api.KernelContext_GetInput(context, 3, &residual));
  if (residual != nullptr) {
    TensorShape rs;
    LWAY_ORT_TRY(shape_of(api, residual, rs));
    if (rs.type != ort::kFloat || rs.dims != out_dims) {
      return fail(api, "R has shape " + shape_text(rs.dims) + ", expected float32 " + shape_text(out_dims));
    }
  }
  OrtValue* y = nullptr;
  LWAY_ORT_TRY(api.KernelContext_GetOutput(context, 0, out_dims.data(), out_dims.size(), &y));
  if (n * h * w == 0) return nullptr;
  void *xd = nullptr, *rd = nullptr, *yd = nullptr;
  LWAY_ORT_TRY(api.GetTensorMutableData(const_cast<OrtValue*>(x), &xd));
  if (residual != nullptr) LWAY_ORT_TRY(api.GetTensorMutableData(const_cast<OrtValue*>(residual), &rd));
  LWAY_ORT_TRY(api.GetTensorMutableData(y, &yd));

  winograd::ConvArgs args{};
  args.x = static_cast<const float*>(xd);
  args.u = kernel.u.data();
  args.bias = kernel.bias.data();
  args.residual = static_cast<const float*>(rd);
  args.y = static_cast<float*>(yd);
  args.n = n, args.h = h, args.w = w, args.c = kernel.c, args.k = kernel.k;
  args.act = kernel.act;
  args.negative_slope = kernel.alpha;
  args.act_gain = 1.f;
  args.res_gain = 1.f;
  Job job{&args, static_cast<size_t>(winograd::workspace_floats(args))};
  LWAY_ORT_TRY(api.KernelContext_ParallelFor(context, &run_block, static_cast<size_t>(winograd::tile_blocks(args)),
                                             0, &job));
  if (job.out_of_memory) return fail(api, "out of memory for its workspace", ort::kFail);
  return nullptr;
}

void destroy_kernel(void* kernel) { delete static_cast<Kernel*>(kernel); }

constexpr size_t kInputs = 4;

const OrtCustomOp kConv3x3 = [] {
  OrtCustomOp op{};
  op.version = ort::kApiVersion;
  op.GetName = [](const OrtCustomOp*) { return "Conv3x3"; };
  op.GetExecutionProviderType = [](const OrtCustomOp*) -> const char* { return nullptr; };
  op.GetInputType = [](const OrtCustomOp*, size_t) { return ort::kFloat; };
  op.GetInputTypeCount = [](const OrtCustomOp*) { return kInputs; };
  op.GetOutputType = [](const OrtCustomOp*, size_t) { return ort::kFloat; };
  op.GetOutputTypeCount = [](const OrtCustomOp*) -> size_t { return 1; };
  op.KernelDestroy = &destroy_kernel;
  op.GetInputCharacteristic = [](const OrtCustomOp*, size_t index) {
    return index == kInputs - 1 ? ort::kOptional : ort::kRequired;
  };
  op.GetOutputCharacteristic = [](const OrtCustomOp*, size_t) { return ort::kRequired; };
  op.GetInputMemoryType = [](const OrtCustomOp*, size_t) { return ort::kMemDefault; };
  op.CreateKernelV2 = &create_kernel;
  op.KernelComputeV2 = &compute;
  return op;
}();

}  // namespace
}  // namespace lway

// The entry point ONNX Runtime looks up in a custom-op library (SessionOptions.register_custom_ops_library).
extern "C" __attribute__((visibility("default"))) OrtStatus* RegisterCustomOps(OrtSessionOptions* options,
                                                                               const OrtApiBase* base) {
  const OrtApi* table = base->GetApi(lway::ort::kApiVersion);
  if (table == nullptr) {
    const lway::ort::Api oldest(base->GetApi(1));
    const std::string message = std::string("lway-engine's ONNX Runtime kernels need ONNX Runtime >= 1.17; this is ") +
                                base->GetVersionString();
    return oldest.CreateStatus(lway::ort::kFail, message.c_str());
  }
  const lway::ort::Api api(table);
  // Never released: the session options (and sessions made from them) refer to it for as long as they live.
  OrtCustomOpDomain* domain = nullptr;
  LWAY_ORT_TRY(api.CreateCustomOpDomain("ai.lway", &domain));
  LWAY_ORT_TRY(api.CustomOpDomain_Add(domain, &lway::kConv3x3));
  return api.AddCustomOpDomain(options, domain);
}
