"""Metrics against reference implementations on real photos, their ideal values, and their direction.

PSNR/SSIM are compared with scikit-image, LPIPS with the ``lpips`` package and DISTS with ``dists-pytorch``; the
reference packages get the same ImageNet backbones (our registry's weights, loaded through torchvision's own
model constructors, since nothing can be downloaded here).
"""

from __future__ import annotations

import pytest
import torch

from lway_engine.evaluation.ladders import LADDERS, distort, ladder
from lway_engine.media.images import read_image, to_tensor
from lway_engine.metrics import METRICS, PAPER_METRICS, build_metric, psnr, psnr_y, references, ssim, ssim_y

PHOTOS = ("astronaut", "coffee", "chelsea")


@pytest.fixture(scope="module")
def photo_pairs(photo) -> tuple[torch.Tensor, torch.Tensor]:
    """(distorted, reference) batches of three real photos (256 px crops): blur on one, noise on the others."""
    refs = torch.cat([to_tensor(photo(name, 256)) for name in PHOTOS])
    distorted = torch.cat([distort(refs[:1], "blur", 2), distort(refs[1:], "noise", 2, seed=1)])
    return distorted, refs


@pytest.fixture(scope="module")
def metric():
    """``metric(name)``: each metric built once for the module (LPIPS and DISTS load real backbones)."""
    built = {}

    def get(name: str):
        if name not in built:
            built[name] = build_metric(name)
        return built[name]

    return get


@pytest.mark.parametrize("y_channel", [False, True])
@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_ssim_match_scikit_image(photo_pairs, y_channel: bool, crop: int) -> None:
    distorted, refs = photo_pairs
    for ours, theirs in ((psnr, references.skimage_psnr), (ssim, references.skimage_ssim)):
        got, expected = ours(distorted, refs, y_channel, crop), theirs(distorted, refs, y_channel, crop)
        assert (got - expected).abs().max() < 1e-4, (got, expected)


def test_array_helpers_keep_their_convention(photo_pairs) -> None:
    """psnr_y/ssim_y (used by the demo and bench/quality.py): Y channel, 4 px crop, on (H, W, 3) arrays."""
    distorted, refs = photo_pairs
    a, b = distorted[0].numpy().transpose(1, 2, 0), refs[0].numpy().transpose(1, 2, 0)
    assert psnr_y(a, b) == pytest.approx(float(psnr(distorted[:1], refs[:1], y_channel=True, crop=4)), abs=1e-12)
    assert ssim_y(a, b) == pytest.approx(float(ssim(distorted[:1], refs[:1], y_channel=True, crop=4)), abs=1e-12)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_lpips_package(photo_pairs, metric, net: str) -> None:
    distorted, refs = photo_pairs
    ours = metric(f"lpips-{net}")(distorted, refs)
    expected = references.lpips_package(net)(distorted, refs)
    assert ours.dtype == torch.float64
    assert (ours - expected).abs().max() < 1e-6, (ours, expected)
    assert (ours > 0.01).all()  # a real distance, not a degenerate zero


def test_dists_matches_reference_implementation(photo_pairs, metric) -> None:
    pytest.importorskip("DISTS_pytorch")
    if not references.DISTS_PYTORCH_WEIGHTS.is_file():
        pytest.skip("dists-pytorch's weights.pt is not installed at sys.prefix")
    distorted, refs = photo_pairs
    ours = metric("dists")(distorted, refs)
    expected = references.dists_pytorch()(distorted, refs)
    assert (ours - expected).abs().max() < 1e-5, (ours, expected)
    assert (ours > 0.01).all()


def test_dists_asset_holds_the_published_weights() -> None:
    from lway_engine.metrics.dists import load_alpha_beta

    if not references.DISTS_PYTORCH_WEIGHTS.is_file():
        pytest.skip("dists-pytorch's weights.pt is not installed at sys.prefix")
    published = torch.load(references.DISTS_PYTORCH_WEIGHTS, map_location="cpu", weights_only=True)
    alpha, beta = load_alpha_beta()
    total = published["alpha"].double().sum() + published["beta"].double().sum()
    assert torch.equal(alpha, published["alpha"].double().flatten() / total)
    assert torch.equal(beta, published["beta"].double().flatten() / total)


@pytest.mark.parametrize("name", list(METRICS))
def test_identical_images_score_ideal_and_batches_agree(photo_pairs, metric, name: str) -> None:
    distorted, refs = photo_pairs
    fn = metric(name)
    same = fn(refs, refs)
    if name == "psnr":
        assert torch.isinf(same).all()
    elif name == "ssim":
        assert torch.allclose(same, torch.ones_like(same), rtol=0, atol=1e-12)
    else:
        assert same.abs().max() < 1e-9, same
    batched = fn(distorted, refs)
    single = torch.cat([fn(distorted[i : i + 1], refs[i : i + 1]) for i in range(len(refs))])
    assert batched.dtype == torch.float64 and batched.shape == (len(refs),)
    assert torch.allclose(batched, single, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", [name for name in METRICS if name != "psnr"])
def test_every_windowed_metric_refuses_images_too_small_to_mean_anything(metric, name: str) -> None:
    """An 8 x 8 pair: each metric with a window or a pyramid names its smallest input instead of a number (DISTS
    scored 1 x 1 pairs) or a traceback from inside a network."""
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs images of at least"):
        metric(name)(x, x.flip(-1))


KODAK_LADDER_PHOTOS = ("kodim03.png", "kodim19.png")


@pytest.mark.parametrize("kind", list(LADDERS))
def test_every_metric_worsens_along_the_ladders(shared_file, metric, kind: str) -> None:
    """Five blur and five noise levels on Kodak24 photos (256 px centre crops): each step is worse for every
    metric (bench/metric_ladders.py runs the same ladders on 10 full photos)."""
    metrics = {name: metric(name) for name in (*PAPER_METRICS, "lpips-vgg")}
    for file in KODAK_LADDER_PHOTOS:
        image = to_tensor(read_image(shared_file(f"Kodak24/{file}")).rgb())
        top, left = (image.shape[2] - 256) // 2, (image.shape[3] - 256) // 2
        ref = image[..., top : top + 256, left : left + 256]
        levels = torch.cat(ladder(ref, kind))
        refs = ref.expand_as(levels)
        for name, fn in metrics.items():
            values = fn(levels, refs)
            steps = values.diff() if METRICS[name].higher_is_better else -values.diff()
            assert (steps < 0).all(), f"{name} on {file} {kind}: {values.tolist()}"
