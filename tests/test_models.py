"""Model loading: real weights through spandrel, as a plain trainable module, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lway_engine.inference.tiles import upscale_tensor
from lway_engine.models import ModelLoadError, load_model


def test_x4plus_is_a_trainable_rrdbnet(x4plus) -> None:
    assert x4plus.architecture == "ESRGAN"
    assert (x4plus.scale, x4plus.in_channels, x4plus.out_channels) == (4, 3, 3)
    assert sum(p.numel() for p in x4plus.module.parameters()) == 16_697_987
    x = torch.rand(1, 3, 12, 12, requires_grad=False)
    x4plus.module.requires_grad_(True)
    x4plus.module(x).mean().backward()  # not under spandrel's inference_mode: gradients exist
    assert all(p.grad is not None for p in x4plus.module.parameters())
    x4plus.module.zero_grad(set_to_none=True)
    x4plus.module.requires_grad_(False)


def test_output_equals_spandrels_loading_of_the_same_file(x4plus, photo) -> None:
    import spandrel

    descriptor = spandrel.ModelLoader().load_from_file(x4plus.path)
    x = torch.from_numpy(photo("astronaut", 24).transpose(2, 0, 1).copy())[None]
    ours = upscale_tensor(x4plus.module, x, x4plus.scale, x4plus.size, tile=0)  # what `upscale` runs
    theirs = descriptor(x)
    assert torch.equal(ours, theirs)


def test_compact_model_loads(compact) -> None:
    assert compact.scale == 4 and compact.architecture == "Compact"


def test_missing_file_names_the_known_models(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="realesrgan-x4plus"):
        load_model(tmp_path / "nope.pth")


@pytest.mark.parametrize("name, payload", [
    ("notes.txt", b"hello"),
    ("random.pth", bytes(range(256)) * 8),
    ("truncated.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":"),
])
def test_unreadable_files_raise_model_load_error(tmp_path: Path, name: str, payload: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(ModelLoadError):
        load_model(path)


def test_unknown_architecture_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "mystery.safetensors"
    save_file({"encoder.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(ModelLoadError, match="not a super-resolution architecture"):
        load_model(path)


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_with_code_is_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    torch.save({"params": _Payload(str(marker))}, path)
    with pytest.raises(ModelLoadError):
        load_model(path)
    assert not marker.exists()
