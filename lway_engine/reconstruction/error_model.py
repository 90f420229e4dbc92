"""R's own expected error on an LR image, predicted without the HR: how far ``R(HR, E(LR))`` lands from the LR
even from the true HR.

Why: adaptation can only pull S towards the HR where R explains the LR better from the HR than from S's output
(the *signal margin*, bench/reconstruction_fidelity.py). The margin needs the HR; its unknown half is R's error
from the HR, predicted here by a ridge regression of its log on E's embedding, five LR statistics and five
statistics of R's reconstruction from the unadapted output S0(LR), which the gate computes anyway (``features``).
``adaptation/gate.py`` turns it into a no-HR test of whether R can be trusted to move S away from its own texture.

What it predicts, and on what, are measured choices (2026-12-01, ``bench/gate_truth.py``):
- **L1 only**, not the flat LWay loss (L1 + LPIPS) it predicted before. The LPIPS of film grain, palettes and blur
  residuals is what the LR alone could not predict: the old model under-predicted R's flat loss by 1.0-2.2x on
  64-px family LRs and by 1.5-3.8x on 128-px ones, where its LPIPS half grew with the image size (R's LPIPS error on
  a 124-px LR is 8-67% above the mean over its 64-px tiles; L1 does not move), so the gate opened on four families.
- **Fitted and applied on 64-px LR tiles**: the gate takes the median over tiles of the size the model was fitted
  on, so its estimate does not drift with the user's image size.
- **S0's reconstruction statistics** (log L1 and LPIPS of ``R(S0(LR), E(LR))`` against the LR, and the shape of
  that residual): held-out R^2 of log L1 0.93 on 200 of 1,000 training crops for the E+R bundled until 2026-12-02
  (0.78 without these five in an ad hoc fit on 600 of the crops); 0.83 for today's (``bench/results/
  error_model_lway-er-x4.json``). On the evaluation images R's true error over the prediction was 1.04-1.06 on
  City100, 0.93-1.29 on every evaluation family at 64- and 128-px LRs, and 1.53-1.55 on the unseen gif_palette,
  whose palette R never saw; with today's E+R it is 1.00-1.06, 0.88-1.79 (film the highest) and 1.52-1.79
  (``gate_truth_lway-er-x4_x86_64_CPU.json``). They tie the model to
  the SR model it was fitted with (``sr_model``, x4plus for the bundled one): for another SR model the prediction
  is an extrapolation.
- **Outlier samples** (2026-12-02): fitted on the training mix alone, the model predicted R's usual small error on
  degradation types R never saw, so for the `resize` checkpoint the gate read 1.59-1.65 on the unseen gif_palette
  (truth 0.80-0.98) and opened. ``bench/fit_error_model.py`` now adds 300 samples whose LR carries a defect no
  training pipeline makes (``degradations/outliers.py``: impulse noise, banding, scratches; no palette or screen), so
  the model sees what R failing looks like; gif_palette then read 1.29-1.48 and halftone_scan 1.29-1.44, both shut,
  at a cost of 0.013 in held-out R^2 on the plain crops (``bench/results/
  gate_truth_lway-er-x4-resize-calibrated_x86_64_CPU.json``). With today's E+R (a further phase of the same run)
  gif_palette reads 1.38-1.49, but halftone_scan's design sample 1.59 (truth 1.03): the gate opens there, and
  ``adapt``'s default, kept by the held-out signal, gained +0.59 dB and -0.0015 LPIPS on it.

The model lives beside its checkpoint (``<checkpoint>.error.safetensors``; ``bench/fit_error_model.py`` writes it)
and ``load_checkpoint`` attaches it as ``reconstruction.error_model`` when present: it is only valid for the E and
R it was fitted on, so the sidecar records the checkpoint's content checksum and a mismatch is refused, as is a
sidecar of the older kind (the flat loss from the LR alone).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor

from lway_engine.metrics.lpips_net import LPIPS
from lway_engine.models import LoadedModel

STATS = 5  # LR statistics beside the embedding (see lr_statistics)
RESIDUAL_STATS = 5  # statistics of R's reconstruction from S0's output (see residual_statistics)
TILE = 64  # LR px: the crops the model is fitted on, and the tiles the gate applies it to
RIDGE = 30.0  # the ridge strength fit_features uses (see its docstring)
KIND = "l1-tiles-s0"  # what a sidecar predicts from which features; sidecars of another kind are refused


def sidecar(checkpoint: str | Path) -> Path:
    """Where the error model of ``checkpoint`` lives."""
    path = Path(checkpoint)
    return path.with_name(path.name.removesuffix(".safetensors") + ".error.safetensors")


def haar_hh(y: Tensor) -> Tensor:
    """The Haar HH band of (N, 1, H, W), dropping an odd last row or column (no padding, which would add zeros)."""
    even = y[..., : y.shape[-2] // 2 * 2, : y.shape[-1] // 2 * 2]
    return (even[..., 0::2, 0::2] - even[..., 0::2, 1::2] - even[..., 1::2, 0::2] + even[..., 1::2, 1::2]) / 2


def _gradient(y: Tensor) -> Tensor:
    """|horizontal| + |vertical| forward differences of (N, 1, H, W), zero-padded to the same size."""
    return F.pad((y[..., :, 1:] - y[..., :, :-1]).abs(), (0, 1)) + F.pad((y[..., 1:, :] - y[..., :-1, :]).abs(),
                                                                          (0, 0, 0, 1))


def lr_statistics(lr: Tensor) -> Tensor:
    """(N, 5): noise sigma (MAD of the luma's Haar HH band), mean |HH|, mean gradient, luma std and mean. The
    embedding is trained to tell degradations apart, not to measure how hard the content is; these say that."""
    y = lr.mean(1, keepdim=True)
    hh = haar_hh(y).flatten(1).abs()
    gradient = (y[..., :, 1:] - y[..., :, :-1]).abs().mean((1, 2, 3)) + (y[..., 1:, :] - y[..., :-1, :]).abs().mean(
        (1, 2, 3))
    return torch.stack([hh.median(1).values / 0.6745, hh.mean(1), gradient, y.flatten(1).std(1),
                        y.flatten(1).mean(1)], dim=1)


def residual_statistics(lr: Tensor, lr_hat: Tensor, lpips: Tensor) -> Tensor:
    """(N, 5) of R's reconstruction ``lr_hat`` = R(S0(LR), E(LR)) against the LR: log L1, log LPIPS (``lpips``,
    (N,)), and the residual's shape: the share of it left after 4x4 means (low frequency: colour, tone, blur
    mismatch), its noise sigma over its mean (random: grain, noise R cannot reproduce from any HR) and the
    correlation of its size with the LR's gradient (at edges: sharpness S0 got wrong). R's error from the true HR
    is mostly the random part, so these say how much of S0's error the HR could remove."""
    residual = (lr - lr_hat).mean(1, keepdim=True)
    size = residual.abs().mean((1, 2, 3)).clamp_min(1e-8)
    low = F.avg_pool2d(residual, 4).abs().mean((1, 2, 3)) / size
    noise = haar_hh(residual).flatten(1).abs().median(1).values / 0.6745 / size
    a, g = residual.abs().flatten(1), _gradient(lr.mean(1, keepdim=True)).flatten(1)
    a, g = a - a.mean(1, keepdim=True), g - g.mean(1, keepdim=True)
    correlation = (a * g).sum(1) / (a.norm(dim=1) * g.norm(dim=1)).clamp_min(1e-12)
    l1 = (lr - lr_hat).abs().mean((1, 2, 3)).clamp_min(1e-8)
    return torch.stack([l1.log(), lpips.flatten().clamp_min(1e-8).log(), low, noise, correlation], dim=1)


def features(embedding: Tensor, lr: Tensor, lr_hat: Tensor, lpips: Tensor) -> Tensor:
    """(N, embed_dim + STATS + RESIDUAL_STATS) regression inputs: E(lr), ``lr_statistics(lr)`` and
    ``residual_statistics`` of R's reconstruction ``lr_hat`` from S0's output (with its LPIPS ``lpips``)."""
    lr, lr_hat = lr.detach().float(), lr_hat.detach().float()
    return torch.cat([embedding.detach().float(), lr_statistics(lr),
                      residual_statistics(lr, lr_hat, lpips.detach().float())], dim=1)


@dataclass
class ErrorModel:
    """log(L1 of R(HR, E(LR)) against the LR) = ((features - mean) / scale) @ weights + bias (``features``)."""

    mean: Tensor
    scale: Tensor
    weights: Tensor
    bias: float
    checkpoint_sha256: str
    colour_fit: bool | None = None  # R's colour mode it was fitted under (Reconstructor.colour_fit); None: either
    sr_model: str = ""  # the SR model whose outputs S0 it was fitted with (the residual features describe them)
    sr_sha256: str = ""  # that model's weights file checksum (LoadedModel.sha256): another model is extrapolation

    def fits(self, colour_fit: bool) -> bool:
        """Whether this model describes R run in colour mode ``colour_fit`` (one fitted under the other mode would
        misjudge R's error)."""
        return self.colour_fit is None or self.colour_fit == colour_fit

    def predict(self, x: Tensor) -> Tensor:
        """(N,) expected L1 of ``R(HR, E(lr))`` against ``lr`` from rows of ``features``."""
        return torch.exp((x.cpu().double() - self.mean) / self.scale @ self.weights + self.bias).float()

    @classmethod
    def constant(cls, embed_dim: int, error: float, checkpoint_sha256: str = "") -> ErrorModel:
        """Predicts ``error`` for every LR: a gate that opens (tiny) or stays shut (huge) whatever the images,
        to force a decision (tests, or a user who knows better than the fit)."""
        zeros = torch.zeros(embed_dim + STATS + RESIDUAL_STATS, dtype=torch.float64)
        return cls(zeros, torch.ones_like(zeros), zeros.clone(), math.log(error), checkpoint_sha256)

    def save(self, path: Path) -> None:
        colour = "any" if self.colour_fit is None else str(int(self.colour_fit))
        save_file({"mean": self.mean, "scale": self.scale, "weights": self.weights,
                   "bias": torch.tensor([self.bias], dtype=torch.float64)}, str(path),
                  metadata={"checkpoint_sha256": self.checkpoint_sha256, "colour_fit": colour, "kind": KIND,
                            "sr_model": self.sr_model, "sr_sha256": self.sr_sha256})

    @classmethod
    def load(cls, path: Path) -> ErrorModel:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("kind") != KIND:
            kind = metadata.get("kind", "the flat loss from the LR alone")
            raise ValueError(f"{path} is an error model of another kind ({kind}) than this version uses ({KIND}); "
                             "refit it with bench/fit_error_model.py")
        t = load_file(str(path))
        colour = {"1": True, "0": False, "any": None}[metadata["colour_fit"]]
        return cls(t["mean"], t["scale"], t["weights"], float(t["bias"][0]), metadata.get("checkpoint_sha256", ""),
                   colour, metadata.get("sr_model", ""), metadata.get("sr_sha256", ""))


def reconstruct(reconstruction: torch.nn.Module, lr: Tensor, *highs: Tensor) -> tuple[Tensor, list[Tensor]]:
    """(E(lr), [R(x, E(lr)) for x in highs]) for (N, 3, h, w) LR tiles and (N, 3, 4h, 4w) high-resolution inputs
    (S0's output, the HR), the embedding and R's styles computed once for all of them."""
    embedding = reconstruction.encoder(lr)
    styles = reconstruction.reconstructor.prepare(embedding)
    return embedding, [reconstruction.reconstructor(x, styles=styles, reference=lr) for x in highs]


def error_samples(reconstruction: torch.nn.Module, upscale: Callable[[Tensor], Tensor],
                  pairs: Iterable[tuple[Tensor, Tensor]], lpips: LPIPS) -> tuple[Tensor, Tensor]:
    """(features, log L1 error) of (HR, LR) pairs ((3, H, W) each): what the regression is fitted and checked on;
    ``upscale`` is S0, the SR model whose outputs the residual features describe."""
    rows, targets = [], []
    with torch.no_grad():
        for hr, lr in pairs:
            hr, lr = hr[None], lr[None]
            embedding, (lr_hat, from_hr) = reconstruct(reconstruction, lr, upscale(lr).float().clamp(0, 1), hr)
            targets.append(float((from_hr - lr).abs().mean()))
            rows.append(features(embedding, lr, lr_hat, lpips(lr_hat, lr))[0])
    return torch.stack(rows).double(), torch.log(torch.tensor(targets, dtype=torch.float64))


def fit_features(x: Tensor, y: Tensor, checkpoint_sha256: str, colour_fit: bool, sr_model: str = "",
                 sr_sha256: str = "", ridge: float = RIDGE) -> ErrorModel:
    """Ridge regression of ``y`` (log error) on ``x``, standardised; ``ridge`` 30 was best among 1-10,000 on
    held-out crops (with the residual features, 30 still beat 100). ``colour_fit``: the R colour mode ``y`` was measured
    under; ``sr_model`` (``sr_sha256``): the S0 of the residual features."""
    mean, scale = x.mean(0), x.std(0) + 1e-8
    z = (x - mean) / scale
    weights = torch.linalg.solve(z.T @ z + ridge * torch.eye(z.shape[1], dtype=torch.float64), z.T @ (y - y.mean()))
    return ErrorModel(mean, scale, weights, float(y.mean()), checkpoint_sha256, colour_fit, sr_model, sr_sha256)


def fit_error_model(reconstruction: torch.nn.Module, sr: LoadedModel, sr_name: str,
                    pairs: Iterable[tuple[Tensor, Tensor]], lpips: LPIPS, checkpoint_sha256: str) -> ErrorModel:
    """The error model of ``reconstruction`` fitted on (HR, LR) pairs, with the SR model ``sr`` (named
    ``sr_name``) as S0."""
    return fit_features(*error_samples(reconstruction, sr.module, pairs, lpips), checkpoint_sha256,
                        reconstruction.reconstructor.colour_fit, sr_name, sr.sha256)
