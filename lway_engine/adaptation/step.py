"""One adaptation step: a batch of LR crops in, the loss terms out, the trainable parameters updated.

The loop around it (``loop.py``) samples crops with NumPy, outside any compiled region, and decides what to do
with the result; everything a step computes on tensors is here, eager or compiled:

- ``forward``: SR model S, reconstructor R (:meth:`AdaptStep.reconstruct`, the one place R is called), LWay loss.
  Compiled, it is one ``torch.compile(fullgraph=True)`` graph, and AOTAutograd compiles its backward with it.
- the update: backward, then Adam. Compiled runs use the fused Adam kernel (CUDA and CPU), one pass over all
  trainable tensors with no compile time; ``Optimizer.step`` cannot join the forward graph anyway, as it breaks
  the graph on purpose (``torch/optim/optimizer.py``, ``_use_grad``: AOT must see it as a no-grad graph).

``anchor`` > 0 adds ``anchor * mean((1 - W) * |S(LR) - S0(LR)|)`` at SR size (W the LR's HF map, repeated over each
LR pixel's SR block; S0 a frozen copy of the model as it was before adapting): the low-frequency areas the LWay
loss ignores are then held to the unadapted output instead of drifting with the shared weights. Why: a
deterministic R cannot reproduce an LR's noise realisation or a degradation it never learned (faded colours, Bayer
demosaicking; ``bench/objective_check.py``), and without the anchor S learns to paint them into flat areas. It is
off by default (the paper's loss).

``texture`` > 0 adds ``texture * LPIPS(S(LR), S0(LR))`` at SR size: a perceptual anchor to the unadapted model's own
output, which keeps its texture statistics (what LPIPS compares) while the LR-scale loss corrects colour and
structure. Why: even with a perfect reconstructor the LR-scale loss alone trades the GAN texture for fidelity
(the output gets smoother), since nothing in it sees the frequencies above the LR's Nyquist limit.

``detail`` > 0 adds ``detail * mean(|D(S(LR)) - D(S0(LR))|)`` at SR size, D(x) = x minus its LR-band part (area
downsample by the scale, bilinear upsample back): only what lies above the LR's Nyquist frequency is held to the
unadapted model, the band the LR-scale loss cannot judge. Why: the anchor and texture terms hold the whole band,
so they also resist the colour and structure corrections the LR loss is there to make; splitting by band lets the
LR loss move the LR band freely while the model's own texture above it stays.

``cross_scale`` > 0 adds ``cross_scale * (L1 + LPIPS)(S(R(y, e)), y)`` on a second set of LR crops y, larger than
the loss's (``AdaptConfig.cross_crop``): a pseudo-pair in the spirit of ZSSR, the LR degraded once more by R with its
own embedding (R's colour map fitted to y's area-downsampled self), upscaled by S and compared with the LR itself.
Why: every other term sees S's output only through R, at LR scale, so none says what belongs above the LR's
Nyquist frequency, where a model trained against the HR gains most of its LPIPS (``bench/supervised_bound.py``:
-0.076 of -0.087 on City100). The pseudo-pair's target is real pixels of the user's own image at full resolution:
what S should restore across one more step of this image's degradation, including the band above R(y)'s Nyquist.

Crop shapes are fixed during a run, so the forward compiles once. ``amp`` (CUDA only) runs S, R and LPIPS under
autocast; the L1 term and the loss's sum stay float32, and fp16 scales the loss (GradScaler, which the fused Adam
unscales without a device sync). On CUDA the model runs channels_last, the layout tensor-core convolutions want.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from lway_engine.adaptation.hf_weight import hf_weight_map
from lway_engine.adaptation.loss import LossTerms, LWayLoss
from lway_engine.compiled import EagerFallback, try_compile
from lway_engine.reconstruction import Reconstructor, Styles

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
Forward = Callable[..., LossTerms]  # (lr_crops, condition[, cross_crops, cross_condition]) -> loss terms


def amp_dtype(amp: str | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` ("bf16", "fp16" or None): fp16 needs CUDA, bf16 runs on CUDA and the CPU."""
    if amp is None:
        return None
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {amp!r}")
    if device.type != "cuda" and amp != "bf16":
        raise ValueError(f"--amp {amp} needs a CUDA device (the CPU has no fast float16 path); "
                         "use --amp bf16 on the CPU, drop --amp, or pass --device cuda")
    return AMP_DTYPES[amp]


@contextmanager
def execution_settings(device: torch.device, deterministic: bool) -> Iterator[None]:
    """Deterministic kernels (``deterministic``) or cuDNN autotuning for the fixed crop shape; restored afterwards.

    Deterministic mode warns (``warn_only``) rather than fails on an op without a deterministic implementation, and
    asks inductor not to pick kernels by on-device benchmarking.
    """
    import torch._inductor.config as inductor_config

    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, inductor_config.deterministic)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what deterministic cuBLAS needs
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
        inductor_config.deterministic = True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, inductor_config.deterministic = saved[2:]


def above_lr_band(sr: torch.Tensor, scale: int) -> torch.Tensor:
    """What an SR image holds above the LR's Nyquist frequency: itself minus its area-downsampled, bilinearly
    upsampled self (a smooth upsampling keeps LR-band content out of the remainder; nearest's blocks would not)."""
    low = F.interpolate(F.avg_pool2d(sr, scale), scale_factor=scale, mode="bilinear", align_corners=False)
    return sr - low


class AdaptStep:
    """Forward, backward and Adam update of one batch; call it with ``(lr_crops, condition)``, plus the cross-scale
    term's ``(cross_crops, cross_condition)`` when it is on.

    ``condition`` says what R is conditioned on for each crop: the index of the crop's image in ``styles``, R's
    conditioning prepared once per run from the images' embeddings (``Reconstructor.prepare``). Returns the batch's
    ``[loss, l1, lpips]`` (computed before the update) as one detached tensor, so the caller syncs once per step.
    """

    def __init__(self, module: nn.Module, reconstructor: Reconstructor, styles: Styles, loss_fn: LWayLoss,
                 params: list[nn.Parameter], lr: float, device: torch.device, compile: bool = False,
                 amp: str | None = None, anchor: float = 0.0, texture: float = 0.0, detail: float = 0.0,
                 cross_scale: float = 0.0) -> None:
        if min(anchor, texture, detail, cross_scale) < 0:
            raise ValueError(f"anchor, texture, detail and cross_scale weights must be >= 0, got {anchor}, {texture}, "
                             f"{detail}, {cross_scale}")
        self.module, self.reconstructor, self.styles, self.loss_fn = module, reconstructor, styles, loss_fn
        self.autocast_dtype = amp_dtype(amp, device)
        self.channels_last = device.type == "cuda" or self.autocast_dtype is not None
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        self.anchor, self.texture, self.detail, self.cross_scale = anchor, texture, detail, cross_scale
        loss_fn.uses_fused_kernel(device)  # the kernel's first-use self-check runs here, outside any compiled graph
        self.unadapted = copy.deepcopy(module).requires_grad_(False) if anchor or texture or detail else None
        self.optimizer = torch.optim.Adam(params, lr=lr, fused=True if compile else None)
        self.scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
        # On the CPU, inductor's switch of the convolutions to channels-last slows their backward (oneDNN) more than
        # it speeds their forward: x4plus's compiled step measured 0.98x eager with it, 1.05x without.
        options = {"layout_optimization": False} if device.type == "cpu" else None
        forward = try_compile(self.forward, device, "the adaptation step", fullgraph=True,
                              options=options) if compile else None
        self._run = EagerFallback(forward and partial(self._step, forward), partial(self._step, self.forward),
                                  "the adaptation step")

    def reconstruct(self, sr: torch.Tensor, condition: torch.Tensor, lr_crops: torch.Tensor) -> torch.Tensor:
        """R(S(LR), e): the LR the SR output degrades back to; ``condition`` holds each crop's image index, and
        ``lr_crops`` the LR it is compared with (R's colour map is fitted to it: ``reconstruction.colour_fit``)."""
        return self.reconstructor(sr, styles=self.styles.select(condition), reference=lr_crops)

    def forward(self, lr_crops: torch.Tensor, condition: torch.Tensor, cross_crops: torch.Tensor | None = None,
                cross_condition: torch.Tensor | None = None) -> LossTerms:
        """The loss terms of a batch (differentiable ``total``); what ``compile`` turns into one graph.
        ``cross_crops`` (with their images' indices): the larger crops of the cross-scale term, if it is on."""
        with torch.autocast(lr_crops.device.type, self.autocast_dtype, enabled=self.autocast_dtype is not None):
            sr = self.module(lr_crops)
            terms = self.loss_fn(self.reconstruct(sr, condition, lr_crops).float(), lr_crops)
            total = terms.total
            if self.cross_scale and cross_crops is not None:
                total = total + self.cross_scale * self.cross_scale_loss(cross_crops, cross_condition)
            if self.unadapted is None:
                return LossTerms(total, terms.l1, terms.lpips)
            with torch.no_grad():
                reference = self.unadapted(lr_crops).float()
            if self.anchor:
                total = total + self.anchor * self.flat_area_anchor(sr, reference, lr_crops)
            if self.texture:
                total = total + self.texture * self.loss_fn.lpips(sr.float(), reference).mean()
            if self.detail:
                scale = sr.shape[-1] // lr_crops.shape[-1]
                change = above_lr_band(sr.float(), scale) - above_lr_band(reference, scale)
                total = total + self.detail * change.abs().mean()
            return LossTerms(total, terms.l1, terms.lpips)

    def cross_scale_loss(self, crops: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """``(L1 + LPIPS)(S(R(y, e)), y)`` for LR crops y (see the module docstring); R is frozen, so its pass needs
        no graph."""
        with torch.no_grad():
            smaller = self.reconstruct(crops, condition, F.avg_pool2d(crops, self.reconstructor.scale)).clamp(0, 1)
        restored = self.module(smaller.to(crops.dtype)).float()
        return (restored - crops).abs().mean() + self.loss_fn.lpips(restored, crops).mean()

    def flat_area_anchor(self, sr: torch.Tensor, reference: torch.Tensor, lr_crops: torch.Tensor) -> torch.Tensor:
        """``mean((1 - W) * |S(LR) - S0(LR)|)`` at SR size (see the module docstring)."""
        with torch.no_grad():
            flat = 1 - F.interpolate(hf_weight_map(lr_crops), size=sr.shape[-2:], mode="nearest")
        return (flat * (sr.float() - reference)).abs().mean()

    def update(self, total: torch.Tensor) -> None:
        """Backward from ``total``, then one Adam step (with loss scaling under fp16)."""
        if self.scaler is None:
            total.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()

    def _step(self, forward: Forward, *batch: torch.Tensor | None) -> torch.Tensor:
        # Gradients are cleared first, so a compiled attempt that failed halfway leaves nothing behind for the retry.
        self.optimizer.zero_grad(set_to_none=True)
        terms = forward(*batch)
        self.update(terms.total)
        return torch.stack([terms.total.detach(), terms.l1, terms.lpips])

    def __call__(self, lr_crops: torch.Tensor, condition: torch.Tensor, cross_crops: torch.Tensor | None = None,
                 cross_condition: torch.Tensor | None = None) -> torch.Tensor:
        if self.channels_last:
            lr_crops = lr_crops.contiguous(memory_format=torch.channels_last)
            if cross_crops is not None:
                cross_crops = cross_crops.contiguous(memory_format=torch.channels_last)
        return self._run(lr_crops, condition, cross_crops, cross_condition)
