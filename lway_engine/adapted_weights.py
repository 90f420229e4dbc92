"""Write adapted weights in the *input checkpoint's* layout, so any tool that loads the original loads them.

spandrel may rename keys when it builds a network (e.g. basicsr's ``conv_first`` becomes ``model.0`` in its
ESRGAN), so the module's own ``state_dict`` is not the user's format. Before adaptation every module tensor is
bit-identical to exactly one tensor of the file; matching them by value gives the key map back, for any
architecture, without per-architecture tables.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lway_engine.atomic import atomic_write

_WRAPPERS = ("params_ema", "params", "state_dict", "model")


def _fingerprint(t: torch.Tensor) -> tuple:
    """Shape and exact bytes, compared in float32 (loading may have upcast an fp16 file; that is exact)."""
    data = t.detach().to("cpu")
    data = (data.float() if data.is_floating_point() else data).contiguous()
    return tuple(data.shape), str(data.dtype), hashlib.sha1(data.view(torch.uint8).numpy().tobytes()).hexdigest()


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """The flat tensor dict of a checkpoint and the wrapper key it sat under (basicsr's ``params_ema``), if any."""
    if path.suffix == ".safetensors":
        return load_file(str(path)), None
    raw = torch.load(path, map_location="cpu", weights_only=True)
    for key in _WRAPPERS:
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            return raw[key], key
    return raw, None


class OriginalLayout:
    """Maps a freshly loaded module's tensors to the keys of the checkpoint file it came from."""

    def __init__(self, module: nn.Module, path: Path) -> None:
        self.original, self.wrapper = read_checkpoint(path)
        by_value: dict[tuple, list[str]] = {}
        for key, tensor in self.original.items():
            by_value.setdefault(_fingerprint(tensor), []).append(key)
        self.key_of: dict[str, str] = {}
        for name, tensor in module.state_dict().items():
            candidates = by_value.get(_fingerprint(tensor))
            if not candidates:
                raise ValueError(f"module tensor {name} matches no tensor of {path.name}; was the module modified?")
            self.key_of[name] = candidates.pop(0)

    def state_dict(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """The module's current tensors under the file's keys and dtypes (other file entries kept unchanged)."""
        out = dict(self.original)
        for name, tensor in module.state_dict().items():
            key = self.key_of[name]
            out[key] = tensor.detach().to("cpu", self.original[key].dtype).contiguous()
        return out

    def save(self, module: nn.Module, dest: Path) -> list[Path]:
        """Write ``dest`` (.safetensors); for a wrapped .pth input also ``dest.pth`` with the same wrapper."""
        if dest.suffix.lower() != ".safetensors" or dest.is_dir():
            raise ValueError(f"{dest}: adapted weights are written as NAME.safetensors (a wrapped .pth input also "
                             "gets NAME.pth beside it); other names would hold safetensors bytes no loader expects")
        state = self.state_dict(module)
        written = [dest]
        atomic_write(dest, lambda tmp: save_file(state, tmp))
        if self.wrapper:
            pth = dest.with_suffix(".pth")
            atomic_write(pth, lambda tmp: torch.save({self.wrapper: state}, tmp))
            written.append(pth)
        return written
