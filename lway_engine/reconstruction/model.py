"""The LR reconstruction branch as one module: degradation encoder E + reconstructor R and their configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor, nn

from lway_engine.reconstruction.encoder import DegradationEncoder
from lway_engine.reconstruction.reconstructor import Reconstructor

if TYPE_CHECKING:
    from lway_engine.reconstruction.error_model import ErrorModel


_OPTIONAL = frozenset({"colour_head", "blur_kernel"})  # 0 turns these off


@dataclass(frozen=True)
class ReconstructionConfig:
    """Everything needed to rebuild the networks; stored in checkpoints so loading needs no side information."""

    scale: int = 4
    embed_dim: int = 512
    encoder_width: int = 64
    reconstructor_width: int = 64
    num_blocks: int = 4
    colour_head: int = 0  # 1: R ends with an embedding-driven global colour/tone map (reconstructor.apply_colour)
    blur_kernel: int = 0  # K > 0 (odd): R blurs the HR by a K x K HR-px kernel from e (reconstructor.blur_kernels)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name in _OPTIONAL else 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.colour_head not in (0, 1):
            raise ValueError(f"colour_head must be 0 or 1, got {self.colour_head!r}")
        if self.blur_kernel and self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be 0 (none) or odd, got {self.blur_kernel!r}")


class LWayReconstruction(nn.Module):
    """E and R together. ``forward`` is the pre-training (step 1) pass ``R(HR, E(LR))``.

    Adaptation (step 2) uses the parts instead: ``styles = reconstructor.prepare(encoder(lr))`` once per image, then
    ``reconstructor(sr, styles=styles)`` every step.
    """

    def __init__(self, config: ReconstructionConfig | None = None) -> None:
        super().__init__()
        self.config = config or ReconstructionConfig()
        c = self.config
        self.encoder = DegradationEncoder(c.embed_dim, c.encoder_width)
        self.reconstructor = Reconstructor(c.scale, c.embed_dim, c.reconstructor_width, c.num_blocks,
                                           bool(c.colour_head), c.blur_kernel)
        self.error_model: ErrorModel | None = None  # R's expected error (error_model.py), set by load_checkpoint

    def forward(self, hr: Tensor, lr: Tensor, with_kernel: bool = False, fit_colour: bool = False
                ) -> Tensor | tuple[Tensor, Tensor]:
        """Reconstruct ``lr`` from ``hr`` and the degradation embedding of ``lr`` itself; ``with_kernel`` also
        returns R's HR blur kernel for that embedding (one pass through E, and through DDP's forward);
        ``fit_colour`` fits R's colour map to ``lr`` (``colour_fit.py``), as adaptation does, instead of the head's;
        asking for it while R's fit is switched off (``--predict-colour``) is an error, not a silent prediction."""
        if fit_colour and not self.reconstructor.colour_fit:
            raise ValueError("fit_colour=True, but this reconstructor's colour fit is switched off "
                             "(reconstructor.colour_fit = False): it would predict its colours instead")
        e = self.encoder(lr)
        lr_hat = self.reconstructor(hr, e, reference=lr if fit_colour else None)
        return (lr_hat, self.reconstructor.hr_kernel(e)) if with_kernel else lr_hat
