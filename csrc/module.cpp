// lway_engine._C: the Python module that carries the lway:: custom ops.
//
// Loading this shared library runs the TORCH_LIBRARY static initialisers (bias_act.cpp, conv3x3.cpp, ...), which register the ops
// with the dispatcher; the ops are then reached through torch.ops.lway.*, not through this module. The module
// itself only reports how it was built, so a mismatch with the running torch is easy to diagnose. `import torch`
// must come first (lway_engine.ext does it) so the torch libraries this links against are already loaded.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace {

py::dict build_info() {
  py::dict info;
  info["compiler"] = LWAY_COMPILER;
  info["torch_version"] = LWAY_TORCH_VERSION;
  info["cxx11_abi"] = static_cast<bool>(_GLIBCXX_USE_CXX11_ABI);
#ifdef _OPENMP
  info["openmp"] = true;
#else
  info["openmp"] = false;
#endif
#ifdef LWAY_WITH_CUDA
  info["cuda"] = true;
#else
  info["cuda"] = false;
#endif
#ifdef LWAY_WINOGRAD_AVX2
  info["winograd_avx2"] = true;
#else
  info["winograd_avx2"] = false;
#endif
#ifdef NDEBUG
  info["debug"] = false;
#else
  info["debug"] = true;
#endif
  return info;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "Native kernels of lway-engine; loading it registers the torch.ops.lway operators.";
  m.def(
      "build_info", &build_info,
      "How this extension was built: compiler, OpenMP, torch version and C++ ABI it was compiled against.");
}
