"""R's own expected error on an LR image, predicted from the LR alone: how far ``R(HR, E(LR))`` lands from the LR
even from the true HR.

Why: adaptation can only pull S towards the HR where R explains the LR better from the HR than from S's output
(the *signal margin*, bench/reconstruction_fidelity.py). The margin needs the HR; its unknown half is R's error
from the HR, and that turns out to be predictable from E's embedding: a ridge regression of its log on E(LR) and
five LR statistics, fitted on 3,000 synthetic training crops (the pretraining data and mix), reached R^2 0.79 on
held-out training crops and Spearman 0.85 with the true error on the evaluation images, for the broad L1
checkpoint (0.41 and 0.71 for the older bundled one, whose errors are less regular). ``adaptation/gate.py`` turns
it into a no-HR test of whether R can be trusted to move S away from its own texture.

The model lives beside its checkpoint (``<checkpoint>.error.safetensors``; ``bench/fit_error_model.py`` writes it)
and ``load_checkpoint`` attaches it as ``reconstruction.error_model`` when present: it is only valid for the E and
R it was fitted on, so the sidecar records the checkpoint's content checksum and a mismatch is refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from lway_engine.adaptation.loss import LWayLoss

STATS = 5  # LR statistics beside the embedding (see lr_statistics)


def sidecar(checkpoint: str | Path) -> Path:
    """Where the error model of ``checkpoint`` lives."""
    path = Path(checkpoint)
    return path.with_name(path.name.removesuffix(".safetensors") + ".error.safetensors")


def lr_statistics(lr: Tensor) -> Tensor:
    """(N, 5): noise sigma (MAD of the luma's Haar HH band), mean |HH|, mean gradient, luma std and mean. The
    embedding is trained to tell degradations apart, not to measure how hard the content is; these say that. The HH
    band drops an odd last row or column (a user's photo can have any size; no padding, which would add zeros)."""
    y = lr.mean(1, keepdim=True)
    even = y[..., : y.shape[-2] // 2 * 2, : y.shape[-1] // 2 * 2]
    hh = (even[..., 0::2, 0::2] - even[..., 0::2, 1::2] - even[..., 1::2, 0::2] + even[..., 1::2, 1::2]) / 2
    gradient = (y[..., :, 1:] - y[..., :, :-1]).abs().mean((1, 2, 3)) + (y[..., 1:, :] - y[..., :-1, :]).abs().mean(
        (1, 2, 3))
    flat = hh.flatten(1).abs()
    return torch.stack([flat.median(1).values / 0.6745, flat.mean(1), gradient, y.flatten(1).std(1),
                        y.flatten(1).mean(1)], dim=1)


@dataclass
class ErrorModel:
    """log(error) = ((features - mean) / scale) @ weights + bias; features = [E(LR), lr_statistics(LR)]."""

    mean: Tensor
    scale: Tensor
    weights: Tensor
    bias: float
    checkpoint_sha256: str
    colour_fit: bool | None = None  # R's colour mode it was fitted under (Reconstructor.colour_fit); None: either

    def fits(self, colour_fit: bool) -> bool:
        """Whether this model describes R run in colour mode ``colour_fit`` (one fitted under the other mode would
        misjudge R's error)."""
        return self.colour_fit is None or self.colour_fit == colour_fit

    def predict(self, embedding: Tensor, lr: Tensor) -> Tensor:
        """(N,) expected flat LWay loss (L1 + LPIPS, W = 1) of ``R(HR, E(lr))`` against ``lr``, from the
        ``embedding`` E(lr) the caller already has."""
        return self.predict_features(features(embedding, lr))

    def predict_features(self, x: Tensor) -> Tensor:
        """``predict`` on rows of ``features``."""
        return torch.exp((x.cpu().double() - self.mean) / self.scale @ self.weights + self.bias).float()

    @classmethod
    def constant(cls, embed_dim: int, error: float, checkpoint_sha256: str = "") -> ErrorModel:
        """Predicts ``error`` for every LR: a gate that opens (tiny) or stays shut (huge) whatever the images,
        to force a decision (tests, or a user who knows better than the fit)."""
        zeros = torch.zeros(embed_dim + STATS, dtype=torch.float64)
        return cls(zeros, torch.ones_like(zeros), zeros.clone(), math.log(error), checkpoint_sha256)

    def save(self, path: Path) -> None:
        colour = "any" if self.colour_fit is None else str(int(self.colour_fit))
        save_file({"mean": self.mean, "scale": self.scale, "weights": self.weights,
                   "bias": torch.tensor([self.bias], dtype=torch.float64)}, str(path),
                  metadata={"checkpoint_sha256": self.checkpoint_sha256, "colour_fit": colour})

    @classmethod
    def load(cls, path: Path) -> ErrorModel:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
        t = load_file(str(path))
        # sidecars written before the colour fit existed were fitted with the colour head's prediction ("0")
        colour = {"1": True, "0": False, "any": None}[metadata.get("colour_fit", "0")]
        return cls(t["mean"], t["scale"], t["weights"], float(t["bias"][0]), metadata.get("checkpoint_sha256", ""),
                   colour)


def features(embedding: Tensor, lr: Tensor) -> Tensor:
    """(N, embed_dim + STATS) regression inputs: E(lr) beside ``lr_statistics(lr)``."""
    return torch.cat([embedding.detach().float(), lr_statistics(lr.detach().float())], dim=1)


def error_samples(reconstruction: torch.nn.Module, pairs: Iterable[tuple[Tensor, Tensor]], loss: LWayLoss
                  ) -> tuple[Tensor, Tensor]:
    """(features, log error) of (HR, LR) pairs ((3, H, W) each): what the regression is fitted and checked on."""
    rows, targets = [], []
    with torch.no_grad():
        for hr, lr in pairs:
            hr, lr = hr[None], lr[None]
            embedding = reconstruction.encoder(lr)
            styles = reconstruction.reconstructor.prepare(embedding)
            targets.append(float(loss(reconstruction.reconstructor(hr, styles=styles, reference=lr), lr).total))
            rows.append(features(embedding, lr)[0])
    return torch.stack(rows).double(), torch.log(torch.tensor(targets, dtype=torch.float64))


def fit_features(x: Tensor, y: Tensor, checkpoint_sha256: str, colour_fit: bool, ridge: float = 30.0
                 ) -> ErrorModel:
    """Ridge regression of ``y`` (log error) on ``x``, standardised; ``ridge`` 30 was best among 1-10,000 on
    held-out crops. ``colour_fit``: the R colour mode ``y`` was measured under."""
    mean, scale = x.mean(0), x.std(0) + 1e-8
    z = (x - mean) / scale
    weights = torch.linalg.solve(z.T @ z + ridge * torch.eye(z.shape[1], dtype=torch.float64), z.T @ (y - y.mean()))
    return ErrorModel(mean, scale, weights, float(y.mean()), checkpoint_sha256, colour_fit)


def fit_error_model(reconstruction: torch.nn.Module, pairs: Iterable[tuple[Tensor, Tensor]], loss: LWayLoss,
                    checkpoint_sha256: str) -> ErrorModel:
    """The error model of ``reconstruction`` fitted on (HR, LR) pairs."""
    return fit_features(*error_samples(reconstruction, pairs, loss), checkpoint_sha256,
                        reconstruction.reconstructor.colour_fit)
