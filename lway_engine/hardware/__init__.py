"""What the machine offers: processor instruction sets and the fast paths they enable, detected in one place."""

from lway_engine.hardware.cpu import CpuFeatures, cpu_features
from lway_engine.hardware.devices import check_device
from lway_engine.hardware.precision import AMP_CHOICES, inference_bf16, resolve_amp
from lway_engine.hardware.report import format_report, system_report
from lway_engine.hardware.selfcheck import FastPathMismatchWarning, fast_path_ok

__all__ = ["AMP_CHOICES", "CpuFeatures", "FastPathMismatchWarning", "check_device", "cpu_features", "fast_path_ok",
           "format_report", "inference_bf16", "resolve_amp", "system_report"]
