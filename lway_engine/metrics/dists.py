"""DISTS (Ding, Ma, Wang & Simoncelli 2020, "Image quality assessment: unifying structure and texture similarity").

Convention: RGB in [0, 1], no quantisation; lower is better, 0 for identical images.

The network is ImageNet VGG16 (our registry entry ``vgg16-imagenet``) up to relu5_3 with every max pooling
replaced by L2 pooling (3x3 Hann window, stride 2). At the input and after each of the five stages it compares
each channel's global mean (texture) and global covariance (structure) between the two images, weighted by the
published alpha/beta (1475 + 1475 values).

alpha/beta ship with the package as ``assets/dists-alpha-beta.safetensors`` (12 KB, sha256 pinned below; see
``assets/dists-alpha-beta.md``) instead of being read from an installed ``dists-pytorch``: that package puts its
``weights.pt`` pickle at the environment root (``sys.prefix``), which breaks with user, ``--target`` and conda
installs, and torchmetrics would be a large dependency for 12 KB. The tests check the asset against the
reference package's file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from lway_engine.metrics.backbones import imagenet_model
from lway_engine.metrics.colour import check_pair

ALPHA_BETA = Path(__file__).resolve().parent.parent / "assets" / "dists-alpha-beta.safetensors"
ALPHA_BETA_SHA256 = "2fbade970dc905b9f5929a2cbdf9708b22442b82879e1e1e0e3faec931303a41"
CHANNELS = (3, 64, 128, 256, 512, 512)  # the image, then relu1_2 .. relu5_3
_STAGE_ENDS = (4, 9, 16, 23, 30)  # VGG16 ``features`` index after each stage's last ReLU (4, 9, ... are pools)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_C1 = _C2 = 1e-6
# the smallest side whose deepest stage (after four stride-2 poolings) keeps 2 x 2 values: at 1 x 1 its variance is
# 0 and its structure term a constant, so a score below this size says nothing of the images
MIN_SIDE = 17


def load_alpha_beta() -> tuple[torch.Tensor, torch.Tensor]:
    """The published alpha and beta, normalised so that together they sum to 1."""
    digest = hashlib.sha256(ALPHA_BETA.read_bytes()).hexdigest()
    if digest != ALPHA_BETA_SHA256:
        raise ValueError(f"{ALPHA_BETA} is corrupt (sha256 {digest}, expected {ALPHA_BETA_SHA256}); reinstall")
    weights = load_file(str(ALPHA_BETA))
    total = weights["alpha"].double().sum() + weights["beta"].double().sum()
    return weights["alpha"].double() / total, weights["beta"].double() / total


class L2Pool(nn.Module):
    """sqrt of a Hann-weighted local mean of squares, stride 2: pooling without the aliasing of max pooling."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hann = torch.tensor([0.5, 1.0, 0.5])
        window = hann[:, None] * hann[None, :]
        self.register_buffer("window", (window / window.sum()).expand(channels, 1, 3, 3).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.conv2d(x * x, self.window, stride=2, padding=1, groups=x.shape[1])
        return (pooled + 1e-12).sqrt()


class DISTS(nn.Module):
    """DISTS distance, one float64 value per image pair. Frozen; gradients flow to the inputs."""

    def __init__(self) -> None:
        super().__init__()
        features = imagenet_model("vgg16").features
        pools = dict(zip(_STAGE_ENDS[:-1], CHANNELS[1:]))  # max pool index -> channels it pools
        layers = [L2Pool(pools[i]) if i in pools else features[i] for i in range(_STAGE_ENDS[-1])]
        starts = (0, *_STAGE_ENDS[:-1])
        self.stages = nn.ModuleList(nn.Sequential(*layers[a:b]) for a, b in zip(starts, _STAGE_ENDS))
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))
        alpha, beta = load_alpha_beta()
        self.register_buffer("alpha", alpha)
        self.register_buffer("beta", beta)
        self.eval().requires_grad_(False).to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> DISTS:
        """Always in eval mode (the network has no dropout or batch norm, but stay explicit)."""
        return super().train(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The image and the five stage outputs."""
        out, h = [x], (x - self.mean) / self.std
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_pair(x, y)
        if min(x.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"DISTS needs images of at least {MIN_SIDE} px, got {tuple(x.shape[-2:])}")
        # one pass over both batches, channels-last (oneDNN's fast convolution layout on CPUs)
        both = self.features(torch.cat([x, y]).float().contiguous(memory_format=torch.channels_last))
        fx, fy = zip(*(f.split(len(x)) for f in both))
        texture = structure = 0.0
        alphas, betas = self.alpha.split(CHANNELS), self.beta.split(CHANNELS)
        for a, b, alpha, beta in zip(fx, fy, alphas, betas):
            a, b = a.double(), b.double()  # global statistics of large maps: accumulate in float64
            mu_a, mu_b = a.mean(dim=(2, 3)), b.mean(dim=(2, 3))
            var_a = (a - mu_a[..., None, None]).pow(2).mean(dim=(2, 3))
            var_b = (b - mu_b[..., None, None]).pow(2).mean(dim=(2, 3))
            cov = (a * b).mean(dim=(2, 3)) - mu_a * mu_b
            texture = texture + ((2 * mu_a * mu_b + _C1) / (mu_a**2 + mu_b**2 + _C1)) @ alpha
            structure = structure + ((2 * cov + _C2) / (var_a + var_b + _C2)) @ beta
        return 1.0 - (texture + structure)
