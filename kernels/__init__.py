"""Triton kernels of lway-engine, installed as ``lway_engine.kernels``.

The fused Haar-DWT weight map + weighted L1 loss lives here (see the kernels issue); importing this package never
requires a GPU.
"""
