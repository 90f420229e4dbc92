"""The LPIPS network on real pretrained backbones: the adaptation and pretraining losses and the LPIPS metric share it.

``LPIPS`` is the ``lpips`` package's network (its shipped v0.1 linear heads) on ImageNet AlexNet/VGG16 weights
from our registry, so it works offline: the ``lpips`` package itself would download the backbone through
torchvision at construction time.
"""

from __future__ import annotations

import warnings

import torch
from safetensors.torch import load_file
from torch import nn

from lway_engine.weights import fetch

_BACKBONES = {"alex": "alexnet-imagenet", "vgg": "vgg16-imagenet"}
# the shortest input side each backbone maps to a non-empty last feature map (AlexNet: a stride-4 11x11 stem and two
# 3x3/2 pools; VGG16: four 2x2 pools); smaller inputs would fail deep inside max_pool2d
MIN_SIDE = {"alex": 31, "vgg": 16}


def load_backbone(net: str) -> dict[str, torch.Tensor]:
    """torchvision ``features.*`` tensors of the LPIPS backbone ``net`` ("alex" or "vgg")."""
    if net not in _BACKBONES:
        raise ValueError(f"unknown LPIPS backbone {net!r}; expected one of {sorted(_BACKBONES)}")
    path = fetch(_BACKBONES[net])
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if k.startswith("features.")}


class LPIPS(nn.Module):
    """Learned perceptual distance (Zhang et al. 2018) for images in [0, 1]; returns one value per image.

    Parameters are frozen, but gradients flow to the inputs: the adaptation loss backpropagates through it.
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        import lpips

        with warnings.catch_warnings():  # lpips builds torchvision nets with the deprecated `pretrained=` flag
            warnings.simplefilter("ignore", UserWarning)
            self.model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        backbone = load_backbone(net)
        # lpips names the torchvision layers "slice<k>.<index>": map "<index>.weight" -> "slice<k>.<index>.weight"
        slices = {name.split(".", 1)[1]: name for name in self.model.net.state_dict()}
        mapped = {slices[key.removeprefix("features.")]: value for key, value in backbone.items()
                  if key.removeprefix("features.") in slices}
        if len(mapped) != len(slices):
            raise ValueError(f"backbone for {net!r} covers {len(mapped)} of {len(slices)} LPIPS tensors")
        self.model.net.load_state_dict(mapped)
        self.model.eval().requires_grad_(False)
        self.net, self.min_side = net, MIN_SIDE[net]

    def train(self, mode: bool = True) -> LPIPS:
        """Stay in eval mode: LPIPS's dropout must never be active, even inside a training loop."""
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS needs two (N, 3, H, W) tensors of one shape, got {tuple(x.shape)} and "
                             f"{tuple(y.shape)}")
        if min(x.shape[-2:]) < self.min_side:
            raise ValueError(f"LPIPS-{self.net} needs images of at least {self.min_side}x{self.min_side} px, got "
                             f"{x.shape[-2]}x{x.shape[-1]}")
        return self.model(x, y, normalize=True).flatten()
