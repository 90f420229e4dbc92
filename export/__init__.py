"""Exporters of adapted models (ONNX, TensorRT), installed as ``lway_engine.export``."""
