"""What every inference backend shares: the error for a file it cannot load, static-shape checks, CUDA names."""

from __future__ import annotations

from lway_engine.export.tensorrt import ShapeOutsideProfile


class ArtefactError(ValueError):
    """A model file the runtime cannot load (corrupt, truncated, wrong kind, or made for another device)."""


def cuda_index(device: str) -> int:
    """``cuda`` -> 0, ``cuda:1`` -> 1; anything else is not a GPU request."""
    kind, _, index = device.partition(":")
    if kind != "cuda":
        raise ValueError(f"device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    return int(index or 0)


def check_static_shape(declared: list[int | None], shape: tuple[int, ...], name: str) -> None:
    """Refuse an input that an export with static dimensions (``declared``; None = dynamic) cannot take."""
    if any(d is not None and d != s for d, s in zip(declared, shape)):
        wanted = "x".join("?" if d is None else str(d) for d in declared)
        raise ShapeOutsideProfile(f"input {'x'.join(map(str, shape))} does not fit {name}, exported for {wanted} "
                                  "(static shape); re-export with dynamic shapes or match --tile")
