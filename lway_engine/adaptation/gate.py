"""The explainability gate: can R be trusted to move S away from its own output on these images? Decided without HR.

The texture-keeping candidate (flat loss + anchor, ``select.py``) gave City100 -0.020 LPIPS but made motion,
bayer_jpeg, film and the demo photos worse, and the held-out signal could not tell those apart (it reads the
texture the candidate removes as detail lost, everywhere). What differs is R: adaptation helps where R explains
the LR much better from the true HR than from S's output, the *signal margin* (per image, Spearman -0.57 with the
candidate's LPIPS change over 32 images). Its unknown half, R's error from the HR, is predicted from the LR by
``reconstruction/error_model.py``; the ratio of R's actual error from S's output to that prediction is

    explainability = L(R(S0(LR), E(LR)), LR) / predicted L(R(HR, E(LR)), LR)        (flat LWay loss: L1 + LPIPS)

about 1 where R cannot tell S's output from the truth, and well above 1 where S's output is what R cannot explain.
Measured with the broad L1 checkpoint, as ``bench/gate_check.py`` computes it: the median over a set's images was
2.65 for City100 pairs 039-060 (82% of images above 2), and 0.85-1.23 for every synthetic family on Kodak24 crops
kodim07-24 (the first six images of each chose the threshold), for halftone_scan, gif_palette, and 1.05 for the
demo photos. A candidate with ``gate`` runs only when the median reaches it; the threshold 2 sits between the two
groups. The gate says R is right to move S away from its texture; it does not vouch for detail S adds, so a gated
run's signal still counts that (``signal.combine(added_only=True)``): real noisy photos (RNI15) open the gate too.
"""

from __future__ import annotations

import statistics

import torch

from lway_engine.adaptation.loss import LWayLoss
from lway_engine.models import LoadedModel
from lway_engine.reconstruction import MIN_LR_SIZE

GATE_IMAGES = 8  # images scored (evenly spaced through the set): the median settles; S0 on each costs seconds
GATE_CROP = 192  # LR px: centre crops of at most this side, as large as City100's LR where the gate was set


def _centre(image: torch.Tensor, side: int, multiple: int) -> torch.Tensor:
    h, w = (min(s, side) // multiple * multiple for s in image.shape[-2:])
    top, left = (image.shape[-2] - h) // 2, (image.shape[-1] - w) // 2
    return image[..., top : top + h, left : left + w]


def gate_sample(images: list) -> list:
    """The up to GATE_IMAGES of ``images`` (any items: tensors, paths) the gate scores, evenly spaced; callers
    that read files pick them first, so only these are read."""
    return images[:: max(1, len(images) // GATE_IMAGES)][:GATE_IMAGES]


def explainability(model: LoadedModel, reconstruction: torch.nn.Module, images: list[torch.Tensor],
                   loss: LWayLoss, amp: str | None = None) -> float | None:
    """The median explainability over up to GATE_IMAGES of ``images`` ((3, H, W) LR on the model's device), or
    None when ``reconstruction`` has no error model (or one fitted under R's other colour mode, which would misjudge
    R's error) or no image reaches E's minimum side; S0 runs under bf16 autocast when ``amp`` is "bf16"."""
    error_model = getattr(reconstruction, "error_model", None)
    images = [image for image in images if min(image.shape[-2:]) >= MIN_LR_SIZE]
    if error_model is None or not error_model.fits(reconstruction.reconstructor.colour_fit) or not images:
        return None
    flat = loss if not loss.hf_weight else LWayLoss(loss.lpips, hf_weight=False, lpips_weight=loss.lpips_weight)
    ratios = []
    for image in gate_sample(images):
        actual, predicted = unadapted_error(model, reconstruction,
                                            _centre(image, GATE_CROP, model.size.multiple_of)[None], flat, amp)
        ratios.append(actual / predicted)
    return statistics.median(ratios)


def unadapted_error(model: LoadedModel, reconstruction: torch.nn.Module, lr: torch.Tensor, flat: LWayLoss,
                    amp: str | None = None) -> tuple[float, float]:
    """The explainability's two terms for one (1, 3, H, W) LR: R's loss from the unadapted output S0(LR), and the
    error model's prediction of R's loss from the true HR (``bench/gate_truth.py`` sets them beside the truth)."""
    with torch.no_grad():
        with torch.autocast(lr.device.type, torch.bfloat16, enabled=amp == "bf16"):
            sr = model.module(lr).float().clamp(0, 1)
        embedding = reconstruction.encoder(lr)
        lr_hat = reconstruction.reconstructor(sr, styles=reconstruction.reconstructor.prepare(embedding),
                                              reference=lr)
        return float(flat(lr_hat, lr).total), float(reconstruction.error_model.predict(embedding, lr)[0])
