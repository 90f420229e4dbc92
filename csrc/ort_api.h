// The part of ONNX Runtime's C API that csrc/ort_conv3x3.cpp uses, declared here: no pip package ships ORT's
// headers, and a custom-op library needs none of ORT's code, only its ABI.
//
// ORT hands a library its API as a table of function pointers (OrtApi) that only ever grows: a slot keeps its
// index in every later release, so the indices below hold for any runtime whose API version is >= kApiVersion
// (ORT 1.17). They were counted from ORT 1.24's onnxruntime_c_api.h, agree with the "size of API version N"
// static_asserts in ORT's onnxruntime_c_api.cc, and tests/test_ort_winograd.py runs the library under the
// onnxruntime this project installs. OrtCustomOp below mirrors ORT's struct of the same name field for field.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {
struct OrtApi;
struct OrtStatus;
struct OrtKernelInfo;
struct OrtKernelContext;
struct OrtValue;
struct OrtTensorTypeAndShapeInfo;
struct OrtCustomOpDomain;
struct OrtSessionOptions;
struct OrtShapeInferContext;

struct OrtApiBase {
  const OrtApi* (*GetApi)(uint32_t version);
  const char* (*GetVersionString)();
};

// ORT's OrtCustomOp, in declaration order. ORT reads the fields of the version the op declares; it calls the two
// characteristic getters whatever the version, so they must be set.
struct OrtCustomOp {
  uint32_t version;
  void* (*CreateKernel)(const OrtCustomOp* op, const OrtApi* api, const OrtKernelInfo* info);
  const char* (*GetName)(const OrtCustomOp* op);
  const char* (*GetExecutionProviderType)(const OrtCustomOp* op);  // nullptr: the CPU provider
  int (*GetInputType)(const OrtCustomOp* op, size_t index);        // ONNXTensorElementDataType
  size_t (*GetInputTypeCount)(const OrtCustomOp* op);
  int (*GetOutputType)(const OrtCustomOp* op, size_t index);
  size_t (*GetOutputTypeCount)(const OrtCustomOp* op);
  void (*KernelCompute)(void* kernel, OrtKernelContext* context);
  void (*KernelDestroy)(void* kernel);
  int (*GetInputCharacteristic)(const OrtCustomOp* op, size_t index);  // version 8
  int (*GetOutputCharacteristic)(const OrtCustomOp* op, size_t index);
  int (*GetInputMemoryType)(const OrtCustomOp* op, size_t index);  // version 13
  int (*GetVariadicInputMinArity)(const OrtCustomOp* op);          // version 14
  int (*GetVariadicInputHomogeneity)(const OrtCustomOp* op);
  int (*GetVariadicOutputMinArity)(const OrtCustomOp* op);
  int (*GetVariadicOutputHomogeneity)(const OrtCustomOp* op);
  OrtStatus* (*CreateKernelV2)(const OrtCustomOp* op, const OrtApi* api, const OrtKernelInfo* info,
                               void** kernel);  // version 16
  OrtStatus* (*KernelComputeV2)(void* kernel, OrtKernelContext* context);
  OrtStatus* (*InferOutputShapeFn)(const OrtCustomOp* op, OrtShapeInferContext* context);  // version 17
  int (*GetStartVersion)(const OrtCustomOp* op);
  int (*GetEndVersion)(const OrtCustomOp* op);
  size_t (*GetMayInplace)(int** input_index, int** output_index);  // later versions; left unset
  void (*ReleaseMayInplace)(int* input_index, int* output_index);
  size_t (*GetAliasMap)(int** input_index, int** output_index);
  void (*ReleaseAliasMap)(int* input_index, int* output_index);
};
}

namespace lway::ort {

constexpr uint32_t kApiVersion = 17;  // KernelContext_ParallelFor; CreateKernelV2/KernelComputeV2 (op version 16)
constexpr int kFloat = 1;             // ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
constexpr int kFail = 1, kInvalidArgument = 2;  // OrtErrorCode
constexpr int kRequired = 0, kOptional = 1;     // OrtCustomOpInputOutputCharacteristic
constexpr int kMemDefault = 0;                  // OrtMemType

// Typed calls into the table by slot index.
class Api {
 public:
  explicit Api(const OrtApi* api) : slots_(reinterpret_cast<void* const*>(api)) {}

  OrtStatus* CreateStatus(int code, const char* message) const {
    return fn<OrtStatus* (*)(int, const char*)>(0)(code, message);
  }
  OrtStatus* CreateCustomOpDomain(const char* domain, OrtCustomOpDomain** out) const {
    return fn<OrtStatus* (*)(const char*, OrtCustomOpDomain**)>(26)(domain, out);
  }
  OrtStatus* CustomOpDomain_Add(OrtCustomOpDomain* domain, const OrtCustomOp* op) const {
    return fn<OrtStatus* (*)(OrtCustomOpDomain*, const OrtCustomOp*)>(27)(domain, op);
  }
  OrtStatus* AddCustomOpDomain(OrtSessionOptions* options, OrtCustomOpDomain* domain) const {
    return fn<OrtStatus* (*)(OrtSessionOptions*, OrtCustomOpDomain*)>(28)(options, domain);
  }
  OrtStatus* GetTensorMutableData(OrtValue* value, void** out) const {
    return fn<OrtStatus* (*)(OrtValue*, void**)>(51)(value, out);
  }
  OrtStatus* GetTensorElementType(const OrtTensorTypeAndShapeInfo* info, int* out) const {
    return fn<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, int*)>(60)(info, out);
  }
  OrtStatus* GetDimensionsCount(const OrtTensorTypeAndShapeInfo* info, size_t* out) const {
    return fn<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, size_t*)>(61)(info, out);
  }
  OrtStatus* GetDimensions(const OrtTensorTypeAndShapeInfo* info, int64_t* dims, size_t count) const {
    return fn<OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, int64_t*, size_t)>(62)(info, dims, count);
  }
  OrtStatus* GetTensorTypeAndShape(const OrtValue* value, OrtTensorTypeAndShapeInfo** out) const {
    return fn<OrtStatus* (*)(const OrtValue*, OrtTensorTypeAndShapeInfo**)>(65)(value, out);
  }
  OrtStatus* KernelInfoGetAttribute_float(const OrtKernelInfo* info, const char* name, float* out) const {
    return fn<OrtStatus* (*)(const OrtKernelInfo*, const char*, float*)>(85)(info, name, out);
  }
  OrtStatus* KernelInfoGetAttribute_int64(const OrtKernelInfo* info, const char* name, int64_t* out) const {
    return fn<OrtStatus* (*)(const OrtKernelInfo*, const char*, int64_t*)>(86)(info, name, out);
  }
  OrtStatus* KernelContext_GetInputCount(const OrtKernelContext* context, size_t* out) const {
    return fn<OrtStatus* (*)(const OrtKernelContext*, size_t*)>(88)(context, out);
  }
  OrtStatus* KernelContext_GetInput(const OrtKernelContext* context, size_t index, const OrtValue** out) const {
    return fn<OrtStatus* (*)(const OrtKernelContext*, size_t, const OrtValue**)>(90)(context, index, out);
  }
  OrtStatus* KernelContext_GetOutput(OrtKernelContext* context, size_t index, const int64_t* dims, size_t count,
                                     OrtValue** out) const {
    return fn<OrtStatus* (*)(OrtKernelContext*, size_t, const int64_t*, size_t, OrtValue**)>(91)(context, index,
                                                                                                  dims, count, out);
  }
  void ReleaseStatus(OrtStatus* status) const { fn<void (*)(OrtStatus*)>(93)(status); }
  void ReleaseTensorTypeAndShapeInfo(OrtTensorTypeAndShapeInfo* info) const {
    fn<void (*)(OrtTensorTypeAndShapeInfo*)>(99)(info);
  }
  OrtStatus* KernelInfo_GetInputCount(const OrtKernelInfo* info, size_t* out) const {
    return fn<OrtStatus* (*)(const OrtKernelInfo*, size_t*)>(230)(info, out);
  }
  OrtStatus* KernelInfoGetConstantInput_tensor(const OrtKernelInfo* info, size_t index, int* is_constant,
                                               const OrtValue** out) const {
    return fn<OrtStatus* (*)(const OrtKernelInfo*, size_t, int*, const OrtValue**)>(249)(info, index, is_constant,
                                                                                         out);
  }
  OrtStatus* KernelContext_ParallelFor(const OrtKernelContext* context, void (*task)(void*, size_t), size_t total,
                                       size_t batches, void* data) const {
    return fn<OrtStatus* (*)(const OrtKernelContext*, void (*)(void*, size_t), size_t, size_t, void*)>(274)(
        context, task, total, batches, data);
  }

 private:
  template <class Fn>
  Fn fn(size_t slot) const {
    return reinterpret_cast<Fn>(slots_[slot]);
  }
  void* const* slots_;
};

}  // namespace lway::ort
