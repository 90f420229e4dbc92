"""ONNX Runtime's CPU provider with lway-engine's Winograd op (ai.lway::Conv3x3) against ORT's own kernels.

The graphs are built here with every pattern the rewrite handles (fused LeakyRelu, a positive scale folded into the
weights, residual Adds, channel Concat, nearest Resize and PReLU on NHWC tensors, a 1x1 convolution it leaves to
ORT, an Add both of whose inputs are eligible convolutions) and run on a real photo at odd sizes; the exported
Real-ESRGAN models go through the same path in tests/test_runtime.py and tests/test_export.py.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lway_engine.export import ort_winograd
from lway_engine.export.ort_winograd import DOMAIN, OP, cpu_session_source, library_path, rewrite
from lway_engine.ext import ExtensionUnavailableWarning

pytestmark = pytest.mark.skipif(library_path() is None or not ort_winograd.cpu_supported(),
                                reason="the custom-op library is built for x86-64 with AVX2 and FMA only")


class _Builder:
    """A small NCHW float graph with seeded weights.

    Convolution outputs are declared with symbolic shapes, as torch's exporter declares them (ONNX's own shape
    inference cannot carry a symbolic size through a convolution): the rewrite fuses a residual Add only where it
    can prove both inputs have one shape. ``spatial`` names the current height and width.
    """

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.value_info: list[onnx.ValueInfoProto] = []
        self.rng = np.random.default_rng(0)
        self.spatial = ["h", "w"]

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def conv(self, x: str, name: str, cin: int, cout: int, kernel: int = 3, bias: bool = True) -> str:
        weight = self.constant(f"{name}.w", self.rng.normal(0, (cin * kernel * kernel) ** -0.5,
                                                            (cout, cin, kernel, kernel)))
        inputs = [x, weight] + ([self.constant(f"{name}.b", self.rng.normal(0, 0.1, cout))] if bias else [])
        self.node("Conv", inputs, name, kernel_shape=[kernel, kernel], pads=[kernel // 2] * 4)
        self.value_info.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", cout, *self.spatial]))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def model(self, output: str, channels: int) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["n", channels, None, None])],
            self.initializers, value_info=[v for v in self.value_info if v.name != output])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _every_pattern() -> onnx.ModelProto:
    g = _Builder()
    a = g.node("LeakyRelu", [g.conv("x", "conv_a", 3, 8)], "a", alpha=0.2)
    scaled = g.node("Mul", [g.conv(a, "conv_b", 8, 8, bias=False), g.constant("s", np.float32(0.2))], "scaled")
    b = g.node("Add", [scaled, a], "b")  # conv -> * 0.2 -> + a: folded scale and a residual
    c = g.node("Concat", [a, b], "c", axis=1)
    d = g.node("PRelu", [g.conv(c, "conv_c", 16, 8), g.constant("slope", g.rng.uniform(0, 0.3, (8, 1, 1)))], "d")
    both = g.node("Add", [g.conv(d, "conv_p", 8, 8), g.conv(d, "conv_q", 8, 8)], "both")  # the Add goes to conv_p
    pooled = g.node("GlobalAveragePool", [both], "pooled")  # (N, 8, 1, 1): broadcast, so not a fused residual
    gated = g.node("Add", [g.conv(both, "conv_s", 8, 8), pooled], "gated")
    e = g.node("Resize", [gated, "", g.constant("scales", np.array([1, 1, 2, 2]))], "e", mode="nearest")
    g.spatial = ["2h", "2w"]
    f = g.node("Relu", [g.conv(e, "conv_d", 8, 4)], "f")
    return g.model(g.conv(f, "conv_1x1", 4, 3, kernel=1), 3)


def _session(model: onnx.ModelProto, kernels: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    if kernels:
        options.register_custom_ops_library(str(library_path()))
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _photo_input(photo, height: int, width: int, batch: int) -> np.ndarray:
    crops = [photo("astronaut", 96)[i * 7 : i * 7 + height, i * 11 : i * 11 + width] for i in range(batch)]
    return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2))


def test_rewrite_runs_every_pattern_like_onnx_runtime(photo) -> None:
    model = _every_pattern()
    rewritten, report = rewrite(model)
    assert report.convolutions == 7  # all but the 1x1
    assert dict(report.fused) == {"LeakyRelu": 1, "Mul": 1, "Add": 2}
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops.count(OP) == 7 and ops.count("Conv") == 1 and ops.count("Add") == 1
    assert "Mul" not in ops and "LeakyRelu" not in ops
    # NCHW where NHWC meets an op the rewrite does not know (the input, GlobalAveragePool, the broadcast Add and
    # the Resize after it, the 1x1 Conv); NHWC everywhere else.
    assert report.transposes == ops.count("Transpose") == 5
    assert next(n for n in rewritten.graph.node if n.op_type == "Concat").attribute[0].i == 3
    plain, fast = _session(model, kernels=False), _session(rewritten, kernels=True)
    for height, width, batch in ((13, 17, 1), (20, 9, 2), (1, 2, 1)):
        x = _photo_input(photo, height, width, batch)
        expected = plain.run(None, {"x": x})[0]
        actual = fast.run(None, {"x": x})[0]
        assert actual.shape == expected.shape == (batch, 3, 2 * height, 2 * width)
        assert np.abs(actual - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())


def test_graph_without_eligible_convolutions_is_left_alone() -> None:
    g = _Builder()
    model = g.model(g.conv("x", "strided", 3, 3, kernel=1), 3)
    rewritten, report = rewrite(model)
    assert report.convolutions == 0 and [n.op_type for n in rewritten.graph.node] == ["Conv"]
    half = onnx.ModelProto.FromString(_every_pattern().SerializeToString())
    for tensor in half.graph.initializer:  # float16 weights (an --fp16 export) are not the kernel's
        if tensor.name.endswith(".w"):
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), tensor.name))
    assert rewrite(half)[1].convolutions == 0


def _custom_conv_model(weight_from_input: bool, channels: int = 4) -> onnx.ModelProto:
    weight = np.ones((2, 4, 3, 3), np.float32)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "h", "w", channels])]
    initializers = [numpy_helper.from_array(np.zeros(2, np.float32), "b")]
    if weight_from_input:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 4, 3, 3]))
    else:
        initializers.append(numpy_helper.from_array(weight, "w"))
    node = helper.make_node(OP, ["x", "w", "b"], ["y"], domain=DOMAIN, activation=0, alpha=0.0)
    graph = helper.make_graph([node], "custom", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)],
                             ir_version=8)


def test_weights_that_are_not_constant_are_refused() -> None:
    with pytest.raises(Exception, match="W must be a constant initializer"):
        _session(_custom_conv_model(weight_from_input=True), kernels=True)


def test_input_with_other_channels_is_a_clear_error() -> None:
    session = _session(_custom_conv_model(weight_from_input=False, channels=5), kernels=True)
    with pytest.raises(Exception, match=r"X has shape \(1, 6, 7, 5\), expected float32 \(N, H, W, 4\)"):
        session.run(None, {"x": np.zeros((1, 6, 7, 5), np.float32)})


def test_missing_library_warns_and_keeps_onnx_runtimes_kernels(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    path = tmp_path / "model.onnx"
    onnx.save(_every_pattern(), path)
    source, report = cpu_session_source(path, ort.SessionOptions())
    assert isinstance(source, bytes) and report.convolutions == 7
    monkeypatch.setattr(ort_winograd, "library_path", lambda: None)
    with pytest.warns(ExtensionUnavailableWarning, match="not built"):
        assert cpu_session_source(path, ort.SessionOptions()) == (str(path), None)
