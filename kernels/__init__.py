"""Triton kernels of lway-engine, installed as ``lway_engine.kernels``.

``hf_weighted_l1`` (and its variants) fuse the LWay loss's Haar-DWT weight map W and weighted L1 term into a few
Triton passes on CUDA, as ``torch.library`` ops that ``torch.compile`` traces through; on CPU they run the PyTorch
reference (``lway_engine.adaptation.hf_weight``). Importing this package never requires a GPU.
"""

from lway_engine.kernels.hf_l1 import hf_weight, hf_weighted_l1, hf_weighted_l1_products

__all__ = ["hf_weight", "hf_weighted_l1", "hf_weighted_l1_products"]
