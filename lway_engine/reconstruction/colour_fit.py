"""R's global colour and tone map fitted to the LR it is compared with, in place of predicting it from ``e``.

Why: the map ``reconstructor.apply_colour`` applies (3x3 channel mix, offset, two curve terms per channel) is one
smooth function per image, and from the LR alone it is ambiguous: a warm photo and a colour cast look alike. E's
colour head guessed the training mix's average shift (City100's camera colours, the broad space's tone stage) on
LR images that had none, and cost R 4-6 dB on Kodak24 families without any colour change (motion 34.4 dB from the
blur path alone, 28.2 with the head; ``bench/reconstruction_fidelity.py``). The LR itself pins the map down: 18
numbers by least squares over thousands of pixels, closed form and differentiable, so fitted it follows every
image's real colours and costs nothing to learn. The loss then no longer asks S to change global colour at all
(the fit absorbs it), which is what an SR model should do: keep the LR's colours and restore its structure.
"""

from __future__ import annotations

import torch
from torch import Tensor

RIDGE = 1e-3  # per pixel, towards the identity map: a flat crop (singular normal equations) keeps the identity


def colour_features(x: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 3, H*W, 6): for each output channel c, the regressors of ``apply_colour``: the three input
    channels, a constant, and channel c's two curve terms ``x(1-x)`` and ``x(1-x)(2x-1)``."""
    batch, channels = x.shape[:2]
    flat = x.reshape(batch, channels, -1)
    bump = flat * (1 - flat)
    shared = flat.transpose(1, 2)[:, None].expand(batch, channels, -1, channels)  # (B, 3, N, 3): every channel
    own = torch.stack([torch.ones_like(flat), bump, bump * (2 * flat - 1)], dim=-1)  # (B, 3, N, 3)
    return torch.cat([shared, own], dim=-1)


def fit_colour(lr_hat: Tensor, reference: Tensor, ridge: float = RIDGE) -> Tensor:
    """``lr_hat`` (B, 3, H, W) through the colour map that brings it closest (least squares, ridge towards the
    identity) to ``reference`` (same shape), per image. Computed in float32 outside autocast; gradients flow
    through ``lr_hat`` and the fitted map alike."""
    if lr_hat.shape != reference.shape:
        raise ValueError(f"colour fit needs the output and its reference at one size: {tuple(lr_hat.shape)} vs "
                         f"{tuple(reference.shape)}")
    with torch.autocast(lr_hat.device.type, enabled=False):
        pred, target = lr_hat.float(), reference.float().detach()
        a = colour_features(pred)  # (B, 3, N, 6)
        batch, channels, pixels, terms = a.shape
        identity = torch.zeros(channels, terms, dtype=a.dtype, device=a.device)
        identity[:, :channels] = torch.eye(channels, dtype=a.dtype, device=a.device)  # y_c = x_c
        y = target.reshape(batch, channels, pixels)
        gram = a.transpose(-1, -2) @ a + ridge * pixels * torch.eye(terms, dtype=a.dtype, device=a.device)
        rhs = (a.transpose(-1, -2) @ y[..., None])[..., 0] + ridge * pixels * identity
        weights = torch.linalg.solve(gram, rhs)  # (B, 3, 6)
        return (a @ weights[..., None])[..., 0].reshape(pred.shape)
