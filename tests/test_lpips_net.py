"""LPIPS on the real backbones: zero for identical images, growing with blur, differentiable in its inputs."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter


def _tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def astronaut(photo) -> Image.Image:
    return Image.fromarray((photo("astronaut", 256) * 255).round().astype(np.uint8))


def test_lpips_alex_orders_real_degradations(lpips_alex, astronaut: Image.Image) -> None:
    x = _tensor(astronaut)
    scores = {s: float(lpips_alex(x, _tensor(astronaut.filter(ImageFilter.GaussianBlur(s))))) for s in (1, 2, 4)}
    buffer = io.BytesIO()
    astronaut.save(buffer, "JPEG", quality=10)
    jpeg = float(lpips_alex(x, _tensor(Image.open(buffer).convert("RGB"))))
    assert float(lpips_alex(x, x)) == 0.0
    assert scores[2] > 0.25
    assert 0 < scores[1] < scores[2] < scores[4]
    assert jpeg > 0.1


def test_lpips_vgg_runs_on_its_own_backbone(astronaut: Image.Image) -> None:
    from lway_engine.metrics.lpips_net import LPIPS

    vgg = LPIPS("vgg")
    x = _tensor(astronaut)
    assert float(vgg(x, x)) == 0.0
    assert float(vgg(x, _tensor(astronaut.filter(ImageFilter.GaussianBlur(2))))) > 0.2


def test_lpips_gradient_reaches_the_input_only(lpips_alex, astronaut: Image.Image) -> None:
    x = _tensor(astronaut)
    y = _tensor(astronaut.filter(ImageFilter.GaussianBlur(2))).requires_grad_(True)
    lpips_alex.train()  # a training loop calls train(); dropout must stay off for a deterministic loss
    a, b = lpips_alex(x, y), lpips_alex(x, y)
    assert torch.equal(a, b)
    a.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(p.grad is None for p in lpips_alex.parameters())


def test_lpips_rejects_mismatched_shapes(lpips_alex) -> None:
    with pytest.raises(ValueError, match="one shape"):
        lpips_alex(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 32, 32))


def test_lpips_names_its_smallest_input_instead_of_failing_inside_the_backbone(lpips_alex) -> None:
    """``min_side`` is the exact edge: the side it states runs, one pixel less is refused with that side."""
    from lway_engine.metrics.lpips_net import LPIPS

    for net in (lpips_alex, LPIPS("vgg")):
        side = net.min_side
        x = torch.rand(1, 3, side, side + 7)
        assert torch.isfinite(net(x, x.flip(-1))).all()
        with pytest.raises(ValueError, match=f"at least {side}x{side} px, got {side - 1}x{side + 7}"):
            net(x[..., 1:, :], x[..., 1:, :])
