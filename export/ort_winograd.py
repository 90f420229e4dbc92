"""Run an exported model's 3x3 convolutions on ONNX Runtime's CPU provider through lway-engine's Winograd kernel.

Why: ORT's CPU convolutions are direct (im2col/NCHWc GEMMs) and already run RRDBNet near this CPU's fp32 peak, so
no ORT setting makes them much faster. Winograd F(4x4, 3x3) does 4x fewer multiply-adds; the C++ extension's
AVX2 kernel (csrc/winograd_avx2.cpp) is also built as an ORT custom-op library (csrc/ort_conv3x3.cpp, domain
``ai.lway``, op ``Conv3x3``). The exported .onnx file stays standard and portable: this module rewrites the graph
in memory when a session is opened on the CPU, and the runtime registers the library with that session.

The rewrite:
1. each Conv with a 3x3 kernel, stride 1, padding 1, no dilation or groups and constant float32 weights becomes
   ``Conv3x3``, absorbing what follows it where that is its only consumer: a LeakyRelu, a multiplication by a
   positive scalar constant (folded into the weights and bias), and an Add (the residual, added in the epilogue);
2. the kernel reads and writes channels-last (NHWC) tensors, so activations are kept NHWC between such nodes:
   elementwise ops, channel Concats (axis 1 -> 3), nearest Resizes (scales permuted) and PRelu run on NHWC
   unchanged; a Transpose is inserted only where an NCHW tensor meets an NHWC consumer or the other way round
   (the graph input, the output, any op not listed).
"""

from __future__ import annotations

import platform
import sys
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lway_engine.ext import ExtensionUnavailableWarning
from lway_engine.hardware import cpu_features

DOMAIN, OP = "ai.lway", "Conv3x3"
_NHWC, _NCHW = [0, 2, 3, 1], [0, 3, 1, 2]
_UNARY = {"LeakyRelu", "Relu", "Sigmoid", "Tanh", "Elu", "Selu", "Identity", "Neg", "Abs", "Exp", "Softplus",
          "HardSigmoid", "HardSwish", "Mish", "Gelu", "Erf", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Cast"}
_BINARY = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"}


def library_path() -> Path | None:
    """The custom-op library built beside the package (x86-64 only), or None where it was not built."""
    folder = Path(__file__).resolve().parent.parent
    suffix = ".dll" if sys.platform == "win32" else ".dylib" if sys.platform == "darwin" else ".so"
    path = folder / f"_ort_winograd{suffix}"
    return path if path.is_file() else None


def cpu_supported() -> bool:
    """Whether this processor runs the kernel (AVX2 + FMA); the library refuses to create kernels otherwise."""
    features = cpu_features()
    return features.avx2 and features.fma


@dataclass
class RewriteReport:
    """What the rewrite did: convolutions moved to the custom op, ops it absorbed, transposes it had to add."""

    convolutions: int = 0
    fused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    transposes: int = 0


def _shapes(model: object) -> dict[str, tuple[int | str | None, ...]]:
    """Each tensor's dims as ONNX shape inference sees them: an int, a symbolic name, or None where unknown."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model).graph
    shapes = {}
    for info in (*inferred.input, *inferred.value_info, *inferred.output):
        if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
            dims = info.type.tensor_type.shape.dim
            shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param or None for d in dims)
    return shapes


class _Graph:
    """The mutable view of an ONNX graph the two passes share: constants by name, each tensor's consumers and
    inferred shape."""

    def __init__(self, model: object) -> None:
        from onnx import numpy_helper

        graph = model.graph
        self.shapes = _shapes(model)
        self.graph = graph
        self.constants: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.consumers: dict[str, list[object]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.outputs = {o.name for o in graph.output}
        self.new_constants: dict[str, np.ndarray] = {}
        self._names = 0

    def only_consumer(self, tensor: str) -> object | None:
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in self.outputs else None

    def same_shape(self, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` provably have one shape (every dim known, or the same symbol): a residual the op
        adds element by element, rather than a broadcast."""
        shape = self.shapes.get(a)
        return shape is not None and None not in shape and shape == self.shapes.get(b)

    def scalar(self, name: str) -> float | None:
        value = self.constants.get(name)
        return float(value.reshape(())) if value is not None and value.size == 1 else None

    def constant(self, stem: str, value: np.ndarray) -> str:
        name = self.unique(stem)
        self.new_constants[name] = value
        return name

    def unique(self, stem: str) -> str:
        self._names += 1
        return f"{stem}__lway{self._names}"


def _attributes(node: object) -> dict[str, object]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _is_plain_3x3(node: object, graph: _Graph) -> bool:
    """A Conv the kernel computes exactly: 3x3, stride 1, zero padding 1, no dilation, one group, constant fp32."""
    if node.op_type != "Conv" or len(node.input) < 2:
        return False
    a = _attributes(node)
    weight = graph.constants.get(node.input[1])
    bias = graph.constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    return (weight is not None and weight.dtype == np.float32 and weight.ndim == 4 and weight.shape[2:] == (3, 3)
            and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET") and list(a.get("pads", [1] * 4)) == [1] * 4
            and list(a.get("strides", [1, 1])) == [1, 1] and list(a.get("dilations", [1, 1])) == [1, 1]
            and a.get("group", 1) == 1 and (len(node.input) < 3 or not node.input[2] or bias is not None))


def _fuse(graph: _Graph, report: RewriteReport) -> list[object]:
    """Pass 1: Conv [-> LeakyRelu] [-> Mul by a positive scalar] [-> Add] chains become single Conv3x3 nodes."""
    from onnx import helper

    replaced: dict[int, object] = {}  # id(last node of a chain) -> the fused node that takes its place
    removed: set[int] = set()
    for node in graph.graph.node:
        if not _is_plain_3x3(node, graph):
            continue
        weight = graph.constants[node.input[1]]
        bias = graph.constants[node.input[2]] if len(node.input) > 2 and node.input[2] else None
        chain, out, alpha, activation, scale, residual = [node], node.output[0], 0.0, 0, 1.0, ""

        def follower(tensor: str) -> object | None:  # an Add may end two chains (conv(a) + conv(b)): first wins
            nxt = graph.only_consumer(tensor)
            return None if nxt is None or id(nxt) in removed or id(nxt) in replaced else nxt

        nxt = follower(out)
        if nxt is not None and nxt.op_type == "LeakyRelu":
            chain.append(nxt)
            activation, alpha, out = 1, float(_attributes(nxt).get("alpha", 0.01)), nxt.output[0]
            nxt = follower(out)
        if nxt is not None and nxt.op_type == "Mul":
            other = nxt.input[1] if nxt.input[0] == out else nxt.input[0]
            value = graph.scalar(other)
            if value is not None and (value > 0 or not activation):  # leaky ReLU commutes with s > 0 only
                chain.append(nxt)
                scale, out = value, nxt.output[0]
                nxt = follower(out)
        if nxt is not None and nxt.op_type == "Add" and len(nxt.input) == 2 and nxt.input[0] != nxt.input[1]:
            other = nxt.input[1] if nxt.input[0] == out else nxt.input[0]
            if graph.same_shape(other, out):  # a residual activation, not a broadcast one
                chain.append(nxt)
                residual, out = other, nxt.output[0]
        inputs = [node.input[0], node.input[1], node.input[2] if bias is not None else "", residual]
        if scale != 1.0:
            inputs[1] = graph.constant(node.input[1], weight * np.float32(scale))
        if scale != 1.0 or bias is None:  # the op always takes a bias: one optional input less in C++
            value = np.zeros(weight.shape[0], np.float32) if bias is None else bias * np.float32(scale)
            inputs[2] = graph.constant(f"{node.input[1]}_bias", value)
        if not residual:
            inputs.pop()
        fused = helper.make_node(OP, inputs, [out], name=graph.unique(node.name or "conv3x3"), domain=DOMAIN,
                                 activation=activation, alpha=alpha)
        replaced[id(chain[-1])] = fused
        removed.update(id(n) for n in chain[:-1])
        report.convolutions += 1
        for absorbed in chain[1:]:
            report.fused[absorbed.op_type] += 1
    return [replaced.get(id(n), n) for n in graph.graph.node if id(n) not in removed]


class _Layouts:
    """Pass 2 state: which tensors are NHWC, and the transposed copies already made of each tensor."""

    def __init__(self, graph: _Graph, report: RewriteReport) -> None:
        self.graph, self.report = graph, report
        self.nhwc: set[str] = set()
        self.copies: dict[tuple[str, str], str] = {}
        self.nodes: list[object] = []

    def convert(self, name: str, to_nhwc: bool) -> str:
        """``name`` in the requested layout, adding (once) a Transpose where it is in the other one."""
        from onnx import helper

        if not name or (name in self.nhwc) == to_nhwc:
            return name
        key = (name, "nhwc" if to_nhwc else "nchw")
        if key not in self.copies:
            copy = self.graph.unique(name)
            self.nodes.append(helper.make_node("Transpose", [name], [copy], name=copy,
                                               perm=_NHWC if to_nhwc else _NCHW))
            self.report.transposes += 1
            self.copies[key] = copy
            if to_nhwc:
                self.nhwc.add(copy)
        return self.copies[key]

    def place(self, node: object) -> None:
        """Append ``node``, rewritten for NHWC where its inputs allow it; otherwise fed NCHW copies."""
        handler = self._handler(node)
        if handler is None:
            node.input[:] = [self.convert(name, False) for name in node.input]
        else:
            handler(node)
            self.nhwc.update(node.output)
        self.nodes.append(node)

    def _handler(self, node: object) -> Callable[[object], None] | None:
        inputs = [name for name in node.input if name]
        if node.op_type == OP and node.domain == DOMAIN:
            return self._conv
        if not any(name in self.nhwc for name in inputs):
            return None
        if node.op_type in _UNARY and len(inputs) == 1:
            return lambda n: None
        if node.op_type in _BINARY and all(name in self.nhwc or self.graph.scalar(name) is not None
                                           for name in inputs):
            return lambda n: None
        if node.op_type == "PRelu" and self._channel_vector(node.input[1]) is not None:
            return self._prelu
        axis = _attributes(node).get("axis")
        if node.op_type == "Concat" and axis in (1, -3):
            return self._concat
        if node.op_type == "Resize" and self._nhwc_scales(node) is not None:
            return self._resize
        return None

    def _conv(self, node: object) -> None:
        node.input[0] = self.convert(node.input[0], True)
        if len(node.input) > 3:
            node.input[3] = self.convert(node.input[3], True)

    def _channel_vector(self, name: str) -> np.ndarray | None:
        """A per-channel constant shaped (C, 1, 1) or (1, C, 1, 1), as (C,): it then broadcasts over NHWC."""
        value = self.graph.constants.get(name)
        if value is None or value.ndim not in (3, 4) or value.size != value.shape[-3]:
            return None
        return value.reshape(-1)

    def _prelu(self, node: object) -> None:
        node.input[1] = self.graph.constant(node.input[1], self._channel_vector(node.input[1]))

    def _concat(self, node: object) -> None:
        from onnx import helper

        node.input[:] = [self.convert(name, True) for name in node.input]
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("axis", 3))

    def _nhwc_scales(self, node: object) -> np.ndarray | None:
        """Nearest-neighbour Resize by constant scales with none on N or C: the same scales, permuted, in NHWC."""
        mode = _attributes(node).get("mode", b"nearest")
        if mode not in (b"nearest", "nearest") or len(node.input) != 3 or node.input[1]:
            return None
        scales = self.graph.constants.get(node.input[2])
        if scales is None or scales.shape != (4,) or scales[0] != 1 or scales[1] != 1:
            return None
        return scales[_NHWC].astype(np.float32)

    def _resize(self, node: object) -> None:
        scales = self._nhwc_scales(node)
        node.input[0] = self.convert(node.input[0], True)
        node.input[2] = self.graph.constant(node.input[2], scales)


def rewrite(model: object) -> tuple[object, RewriteReport]:
    """A copy of ``model`` whose eligible 3x3 convolutions run as ``ai.lway::Conv3x3`` (see the module docstring).

    The copy is returned unchanged (``report.convolutions == 0``) when the model has no such convolution.
    """
    import onnx
    from onnx import helper, numpy_helper

    report = RewriteReport()
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = _Graph(model)
    fused = _fuse(graph, report)
    if report.convolutions == 0:
        return model, report
    layouts = _Layouts(graph, report)
    for node in fused:
        layouts.place(node)
    renames = {}
    for out in model.graph.output:  # the graph's outputs leave in NCHW under their own names
        if out.name in layouts.nhwc:
            renames[out.name] = graph.unique(out.name)
    for node in layouts.nodes:
        node.output[:] = [renames.get(name, name) for name in node.output]
        node.input[:] = [renames.get(name, name) for name in node.input]
    for name, inner in renames.items():
        layouts.nodes.append(helper.make_node("Transpose", [inner], [name], name=graph.unique(name), perm=_NCHW))
        report.transposes += 1
    del model.graph.node[:]
    model.graph.node.extend(layouts.nodes)
    used = {name for node in model.graph.node for name in node.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in graph.new_constants.items() if k in used)
    del model.graph.value_info[:]  # shapes of renamed/re-laid-out tensors would be stale; ORT infers them again
    model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return model, report


def cpu_session_source(path: Path, options: object) -> tuple[str | bytes, RewriteReport | None]:
    """What to open on ORT's CPU provider: the rewritten model where the kernel applies, else the file itself.

    When the rewritten model is returned, the custom-op library has been registered with ``options`` (an
    ``onnxruntime.SessionOptions``). Where the library was not built (a build without a C++ compiler) a warning
    says so once; on processors without AVX2 and FMA, or for graphs with no eligible convolution (fp16 exports),
    ORT's own kernels run without comment.
    """
    import onnx

    library = library_path()
    if library is None:
        if platform.machine().lower() in ("x86_64", "amd64"):
            warnings.warn("lway-engine's ONNX Runtime CPU kernels (_ort_winograd) are not built; ONNX Runtime's "
                          "own convolutions are used, which are slower. Reinstall lway-engine with a C++ compiler "
                          "present.", ExtensionUnavailableWarning, stacklevel=3)
        return str(path), None
    if not cpu_supported():
        return str(path), None
    rewritten, report = rewrite(onnx.load(str(path)))
    if report.convolutions == 0:
        return str(path), None
    options.register_custom_ops_library(str(library))
    return rewritten.SerializeToString(), report
