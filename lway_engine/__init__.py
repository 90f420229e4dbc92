"""lway-engine: self-supervised test-time adaptation of super-resolution models (LWay, CVPR 2024).

The stable public surface is what ``__all__`` lists: ``Adapter`` (adapt a model to LR images, no HR) and
``Upscaler`` (run any lway-engine artefact), with the image type they exchange. They load lazily, so importing
the package stays cheap for the command line.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["AdaptResult", "Adapter", "Image", "Upscaler", "read_image", "write_image"]

_PUBLIC = {"Adapter": "lway_engine.adaptation.adapter", "AdaptResult": "lway_engine.adaptation.adapter",
           "Upscaler": "lway_engine.inference.upscaler", "Image": "lway_engine.media.images",
           "read_image": "lway_engine.media.images", "write_image": "lway_engine.media.images"}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'lway_engine' has no attribute {name!r}")
