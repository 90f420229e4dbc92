"""Checkpoints of the LR reconstruction branch: one safetensors file whose metadata says how to rebuild it.

The header carries the format name and version, the :class:`ReconstructionConfig`, a sha256 of the tensor bytes
(safetensors itself only checks the header's structure, so a flipped bit in the weights would go unnoticed) and a
caller's JSON ``extra`` (e.g. training step, data set). Files are written to a temporary file in the target folder
and moved into place with ``os.replace``, so a reader never sees a half-written checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from lway_engine.atomic import atomic_write
from lway_engine.reconstruction.model import LWayReconstruction, ReconstructionConfig

FORMAT = "lway-reconstruction"
FORMAT_VERSION = 1
# Config fields added after the first files were written: a file without one was trained without the feature, which
# is what the field's default means. Any other missing field is damage.
_ADDED_FIELDS = frozenset({"colour_head", "blur_kernel"})


class CheckpointError(Exception):
    """A file that cannot be loaded as (or does not fit) an LWay reconstruction checkpoint."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint's header says, readable without loading its tensors."""

    config: ReconstructionConfig
    extra: dict[str, Any]
    format_version: int
    content_sha256: str


def _content_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the names and raw bytes of ``tensors`` in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(
    path: str | os.PathLike[str], model: LWayReconstruction, extra: dict[str, Any] | None = None
) -> None:
    """Write ``model`` (and the JSON-serialisable ``extra``) to ``path`` atomically."""
    path = Path(path)
    extra_json = json.dumps(extra or {})  # fails before anything is written if extra is not JSON-serialisable
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        **{field: str(value) for field, value in dataclasses.asdict(model.config).items()},
        "content_sha256": _content_sha256(tensors),
        "extra": extra_json,
    }
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def read_checkpoint_info(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Parse and validate a checkpoint's header (cheap: no tensor is read)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"LWay reconstruction checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except SafetensorError as exc:
        raise CheckpointError(f"{path} is not a valid safetensors file (corrupt or truncated?): {exc}") from exc
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an LWay reconstruction checkpoint (no format={FORMAT!r} in its metadata)")
    try:
        version = int(metadata["format_version"])
        if version > FORMAT_VERSION:  # checked first: a newer format may lay out the rest differently
            raise CheckpointError(
                f"{path} has format version {version}, this lway-engine reads up to {FORMAT_VERSION}: "
                "upgrade lway-engine"
            )
        fields = {f.name: int(metadata[f.name] if f.name in metadata or f.name not in _ADDED_FIELDS else f.default)
                  for f in dataclasses.fields(ReconstructionConfig)}
        config = ReconstructionConfig(**fields)
        extra = json.loads(metadata["extra"])
        content_sha256 = metadata["content_sha256"]
    except (KeyError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise CheckpointError(f"{path} has damaged LWay metadata: {exc!r}") from exc
    return CheckpointInfo(config, extra, version, content_sha256)


def load_checkpoint(
    path: str | os.PathLike[str], expect_scale: int | None = None, expect_embed_dim: int | None = None
) -> LWayReconstruction:
    """Rebuild the model saved at ``path`` (on the CPU, in eval mode, parameters trainable).

    ``expect_scale`` / ``expect_embed_dim`` are checked before any tensor is read, so pairing a reconstructor with an
    SR model of another scale fails with a message naming both, not with a shape error deep inside adaptation.
    """
    info = read_checkpoint_info(path)
    config = info.config
    if expect_scale is not None and config.scale != expect_scale:
        raise CheckpointError(f"checkpoint is for x{config.scale} but the SR model is x{expect_scale} ({path})")
    if expect_embed_dim is not None and config.embed_dim != expect_embed_dim:
        raise CheckpointError(
            f"checkpoint has degradation embeddings of size {config.embed_dim}, expected {expect_embed_dim} ({path})"
        )
    try:
        tensors = load_file(str(path))
    except SafetensorError as exc:
        raise CheckpointError(f"{path} could not be read (corrupt or truncated?): {exc}") from exc
    if _content_sha256(tensors) != info.content_sha256:
        raise CheckpointError(f"{path} is corrupt: its weights do not match the checksum in its header")
    model = LWayReconstruction(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:  # missing/unexpected keys or wrong shapes for the config
        raise CheckpointError(f"{path} does not match its own config {config}: {exc}") from exc
    _attach_error_model(model, Path(path), info.content_sha256)
    return model.eval()


def _attach_error_model(model: LWayReconstruction, path: Path, content_sha256: str) -> None:
    """``model.error_model``: R's expected error (``error_model.py``) from the sidecar fitted on these weights, or
    None (no sidecar; a sidecar of other weights, or of an older kind, is refused, as its predictions would be
    meaningless here)."""
    from lway_engine.reconstruction.error_model import ErrorModel, sidecar

    model.error_model = None
    if sidecar(path).is_file():
        try:
            error_model = ErrorModel.load(sidecar(path))
        except ValueError as exc:
            raise CheckpointError(str(exc)) from exc
        if error_model.checkpoint_sha256 != content_sha256:
            raise CheckpointError(f"{sidecar(path)} was fitted on other weights than {path.name}; refit it with "
                                  "bench/fit_error_model.py or delete it")
        model.error_model = error_model
