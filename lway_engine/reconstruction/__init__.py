"""The LWay LR reconstruction branch (paper Sec. 3.1): degradation encoder E, reconstructor R, checkpoints.

Step 1 trains ``LWayReconstruction`` on HR/LR pairs (``R(HR, E(LR)) ~ LR``); step 2 freezes it and, per test
image, computes ``styles = reconstructor.prepare(encoder(lr))`` once, then backpropagates through
``reconstructor(sr, styles=styles)`` every step.
"""

from lway_engine.reconstruction.checkpoint import (
    CheckpointError,
    CheckpointInfo,
    CheckpointNotFoundError,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
)
from lway_engine.reconstruction.cost import ReconstructionCost, macs_per_lr_pixel
from lway_engine.reconstruction.encoder import MIN_LR_SIZE, DegradationEncoder
from lway_engine.reconstruction.model import LWayReconstruction, ReconstructionConfig
from lway_engine.reconstruction.modulated import ModulatedConv2d
from lway_engine.reconstruction.reconstructor import Reconstructor, Styles

__all__ = [
    "MIN_LR_SIZE",
    "CheckpointError",
    "CheckpointInfo",
    "CheckpointNotFoundError",
    "DegradationEncoder",
    "LWayReconstruction",
    "ModulatedConv2d",
    "ReconstructionConfig",
    "ReconstructionCost",
    "Reconstructor",
    "Styles",
    "load_checkpoint",
    "macs_per_lr_pixel",
    "read_checkpoint_info",
    "save_checkpoint",
]
