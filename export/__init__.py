"""Exporters of adapted models (ONNX, TensorRT), installed as ``lway_engine.export``.

``onnx.export_onnx`` writes a verified ONNX file, ``tensorrt.build_engine`` a cached TensorRT engine from it,
``command.export_command`` is ``lway-engine export``; ``lway_engine.Upscaler`` runs all of them, on the CPU
with ``ort_winograd``'s rewrite (3x3 convolutions through lway-engine's Winograd custom op).
"""
