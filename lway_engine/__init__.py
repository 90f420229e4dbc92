"""lway-engine: self-supervised test-time adaptation of super-resolution models (LWay, CVPR 2024)."""

__version__ = "0.1.0"
