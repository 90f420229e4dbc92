"""``bench/mosaic_phase.py`` (can E+R learn a Bayer mosaic's phase?): its tail reproduces the degradation's own
mosaic at every phase, and untrained it leaves today's R exactly as it is."""

from __future__ import annotations

import pytest
import torch

from lway_engine.degradations import ops


@pytest.mark.parametrize("phase", [0, 1, 2, 3])
def test_each_phase_is_the_shifted_rggb_mosaic(bench, photo, phase: int) -> None:
    module = bench("mosaic_phase")
    dy, dx = module.PHASES[phase]
    z = torch.from_numpy(photo("astronaut", 66).transpose(2, 0, 1).copy())[None]
    ours = module.mosaic_demosaic(z, dy, dx)
    # Pixel (y, x) of the shifted pattern has the RGGB phase of (y - dy, x - dx) in the cropped image: compare them
    # away from the borders, where padding differs.
    reference = ops.demosaic_bilinear(ops.bayer_mosaic(z[..., dy:, dx:]))
    assert ours.shape == z.shape
    assert torch.allclose(ours[..., dy + 2 : -2, dx + 2 : -2], reference[..., 2:-2, 2:-2], atol=1e-6)


def test_untrained_tail_leaves_r_unchanged(bench, small_reconstruction) -> None:
    module = bench("mosaic_phase")
    model = module.PhaseAware(small_reconstruction)
    hr, lr = torch.rand(2, 3, 128, 128), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(hr, lr, tail=True), model(hr, lr, tail=False))
        assert model.tail.gate(lr).shape == (2, 4)
