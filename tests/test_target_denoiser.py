"""``bench/target_denoiser.py`` (the noise-aware target's denoiser): an untrained one is the identity, its training
pairs are the LR beside its noise-free twin, and its training removes planted noise."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image


def _uint8(image: np.ndarray) -> np.ndarray:
    """The HR as training holds it (uint8), from the float photo fixture."""
    return np.rint(image * 255).astype(np.uint8)


@pytest.mark.parametrize("size", [(17, 30), (64, 64)])
def test_untrained_denoiser_is_the_identity(bench, size: tuple[int, int]) -> None:
    denoiser = bench("target_denoiser").TargetDenoiser(width=8)
    lr = torch.rand(2, 3, *size)
    assert torch.equal(denoiser(lr), lr)  # zero last conv, sizes not a multiple of 4 cropped back


def test_training_pairs_are_lr_and_noise_free_twin(bench, photo) -> None:
    module = bench("target_denoiser")
    hr = [torch.from_numpy(_uint8(photo(name)).transpose(2, 0, 1).copy()) for name in ("astronaut", "chelsea")]
    noisy, clean = module.batch_for_step(hr, seed=3, step=7, size=12)
    again = module.batch_for_step(hr, seed=3, step=7, size=12)
    assert noisy.shape == clean.shape == (12, 3, module.CROP, module.CROP)
    assert torch.equal(noisy, again[0]) and torch.equal(clean, again[1])  # a pure function of (seed, step)
    differs = (noisy - clean).flatten(1).abs().amax(1) > 0
    assert 0 < int(differs.sum()) < 12  # some noisy pairs, some clean twins passed through unchanged


def test_training_removes_planted_noise(bench) -> None:
    module = bench("target_denoiser")
    torch.manual_seed(0)
    model = module.TargetDenoiser(width=8)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)

    def pair() -> tuple[torch.Tensor, torch.Tensor]:
        clean = F.interpolate(torch.rand(8, 3, 8, 8, generator=generator), size=32, mode="bilinear")
        return clean + 0.1 * torch.randn(clean.shape, generator=generator), clean

    for _ in range(120):
        noisy, clean = pair()
        loss = F.mse_loss(model(noisy), clean)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    noisy, clean = pair()
    with torch.no_grad():
        ratio = float(F.mse_loss(model(noisy), clean) / F.mse_loss(noisy, clean))
    assert ratio < 0.7, ratio  # NaN fails too


def test_killed_training_resumes_to_the_same_weights_and_a_budget_stops_it(bench, photo, tmp_path, monkeypatch) -> None:
    module = bench("target_denoiser")
    data = tmp_path / "data"
    for folder, names in (("Urban100_HR_jpeg", ("astronaut",)), ("Manga109_HR_jpeg", ("chelsea",)),
                          ("Sun_Hays80", ("coffee",))):
        (data / folder).mkdir(parents=True)
        for name in names:
            Image.fromarray(_uint8(photo(name))).save(data / folder / f"{name}.jpg", quality=95)

    def args(out: str, resume: bool, budget: float = 0) -> argparse.Namespace:
        return argparse.Namespace(out=tmp_path / out, data=data, steps=4, batch=2, lr=1e-3, width=4, seed=0,
                                  checkpoint_every=2, resume=resume, device="cpu", workers=0, budget=budget)

    # In-process batches: a DataLoader worker forked from the full suite's pytest process segfaulted in CI (likely the
    # threads of libraries other tests load); the script's --workers path is dry-run tested on its own (docstring).
    module.train(args("straight", False))
    original = module.batch_for_step

    def killed_at_step_3(hr_images, seed, step, size):
        if step == 3:
            raise KeyboardInterrupt
        return original(hr_images, seed, step, size)

    monkeypatch.setattr(module, "batch_for_step", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        module.train(args("killed", False))
    monkeypatch.setattr(module, "batch_for_step", original)
    module.train(args("killed", True))
    straight = torch.load(tmp_path / "straight" / "target_denoiser.pt")
    resumed = torch.load(tmp_path / "killed" / "target_denoiser.pt")
    assert resumed["step"] == straight["step"] == 4
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    module.train(args("budget", False, budget=1e-9))  # a spent budget: checkpoint after the step, then stop
    assert torch.load(tmp_path / "budget" / "target_denoiser.pt")["step"] == 1
