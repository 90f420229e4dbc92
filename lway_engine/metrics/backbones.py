"""torchvision ImageNet networks with our registry's weights (``lway_engine.weights``), so metrics and the
reference packages they are checked against work offline; torchvision itself would download them."""

from __future__ import annotations

from torch import nn

from lway_engine.metrics.lpips_net import load_backbone

_NETS = {"alexnet": "alex", "vgg16": "vgg"}  # torchvision constructor -> LPIPS backbone name in the registry


def imagenet_model(arch: str) -> nn.Module:
    """torchvision ``alexnet`` or ``vgg16`` with the ImageNet ``features`` weights (the classifier, which no
    metric uses, stays at its random initialisation)."""
    from torchvision.models.alexnet import alexnet
    from torchvision.models.vgg import vgg16

    if arch not in _NETS:
        raise ValueError(f"unknown backbone {arch!r}; known: {', '.join(_NETS)}")
    model = {"alexnet": alexnet, "vgg16": vgg16}[arch]()
    model.features.load_state_dict({k.removeprefix("features."): v for k, v in load_backbone(_NETS[arch]).items()})
    return model
