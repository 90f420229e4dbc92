"""Which files are the references in a benchmark folder, and which SR output belongs to which reference.

Layouts (``--layout``):

* ``plain``: every image under the HR folder is a reference; SR files carry the same stem.
* ``city100``: City100 (``NNNH.png`` reference, ``NNNL.png`` its registered short-focal-length shot).
* ``realsr``: RealSR V3 (``<Camera>/Test/<scale>/<Camera>_NNN_HR.png`` with ``..._LR<scale>.png``); folders
  named ``Train`` are skipped, and where the parent folders are scale numbers only ``<scale>`` is used, so
  ``--hr`` can be the dataset root or one ``Test/4`` folder.
* ``drealsr``: DRealSR (``Test_x<scale>/test_HR/<name>_x1.png`` with ``test_LR/<name>_x<scale>.png``);
  ``Train*`` folders are skipped.
* ``auto``: the first of city100, realsr, drealsr with at least one file of its reference pattern, else plain.

An SR file matches a reference when its stem is the reference's key (``001``, ``Canon_001``), the reference's own
stem, or the stem of the reference's LR partner (``001L``, ``Canon_001_LR4``, ``DSC_1454_x4``): SR outputs are
usually named after the LR input they were made from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lway_engine.media.images import READ_SUFFIXES

LAYOUTS = ("auto", "plain", "city100", "realsr", "drealsr")


class PairingError(ValueError):
    """The SR and HR folders do not pair up one to one; the message lists what is missing or extra."""


@dataclass(frozen=True)
class Reference:
    """One reference image, its pairing key and the stems an SR file may carry to match it."""

    key: str
    path: Path
    sr_stems: tuple[str, ...]


@dataclass(frozen=True)
class Pair:
    key: str
    sr: Path
    hr: Path


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in READ_SUFFIXES)


def _skipped(path: Path, root: Path) -> bool:
    return any(part.lower().startswith("train") for part in path.relative_to(root).parts[:-1])


def _plain(path: Path, scale: int) -> Reference | None:
    return Reference(path.stem, path, (path.stem,))


def _city100(path: Path, scale: int) -> Reference | None:
    if m := re.fullmatch(r"(\d+)H", path.stem):
        return Reference(m[1], path, (m[1], path.stem, f"{m[1]}L"))
    return None


def _realsr(path: Path, scale: int) -> Reference | None:
    if m := re.fullmatch(r"(.+)_HR", path.stem):
        return Reference(m[1], path, (m[1], path.stem, f"{m[1]}_LR{scale}"))
    return None


def _drealsr(path: Path, scale: int) -> Reference | None:
    if m := re.fullmatch(r"(.+)_x1", path.stem):
        return Reference(m[1], path, (m[1], path.stem, f"{m[1]}_x{scale}"))
    return None


_MATCHERS: dict[str, Callable[[Path, int], Reference | None]] = {
    "plain": _plain, "city100": _city100, "realsr": _realsr, "drealsr": _drealsr}


def _candidates(root: Path, layout: str, scale: int) -> list[Path]:
    """HR-folder files a layout considers, before its reference pattern is applied."""
    files = image_files(root)
    if layout in ("realsr", "drealsr"):
        files = [p for p in files if not _skipped(p, root)]
    if layout == "realsr" and any(p.parent.name.isdigit() for p in files):
        files = [p for p in files if p.parent.name == str(scale)]
    return files


def detect_layout(root: Path, scale: int) -> str:
    """The dataset layout of an HR folder (see the module docstring for the rule)."""
    for layout in ("city100", "realsr", "drealsr"):
        if any(_MATCHERS[layout](p, scale) for p in _candidates(root, layout, scale)):
            return layout
    return "plain"


def references(root: Path, layout: str, scale: int) -> list[Reference]:
    """The reference images of an HR folder in ``layout``, sorted by key; keys must be unique."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(root, scale)
    refs = [r for p in _candidates(root, layout, scale) if (r := _MATCHERS[layout](p, scale))]
    if not refs:
        raise PairingError(f"no reference images found in {root} for layout {layout!r}")
    seen: dict[str, Path] = {}
    for ref in refs:
        if ref.key in seen:
            raise PairingError(f"two references share the name {ref.key!r}: {seen[ref.key]} and {ref.path}")
        seen[ref.key] = ref.path
    return sorted(refs, key=lambda r: r.key)


def _listing(names: list[str], limit: int = 10) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def match_pairs(sr_root: Path, hr_root: Path, layout: str = "auto", scale: int = 4) -> list[Pair]:
    """One (SR, HR) pair per reference, matched by name; raises ``PairingError`` naming every reference without
    an SR file, every SR file without a reference, and every reference claimed by two SR files."""
    refs = references(hr_root, layout, scale)
    owner = {stem: ref for ref in refs for stem in ref.sr_stems}
    hr_files = {ref.path.resolve() for ref in refs}
    claimed: dict[str, list[Path]] = {}
    extra = []
    for path in image_files(sr_root):
        if path.resolve() in hr_files:
            continue
        ref = owner.get(path.stem)
        if ref is None:
            extra.append(str(path.relative_to(sr_root)))
        else:
            claimed.setdefault(ref.key, []).append(path)
    problems = []
    if missing := [ref.key for ref in refs if ref.key not in claimed]:
        problems.append(f"{len(missing)} of {len(refs)} references have no SR image in {sr_root}: "
                        f"{_listing(missing)}")
    if extra:
        problems.append(f"{len(extra)} SR images match no reference in {hr_root}: {_listing(extra)}")
    if twice := [f"{key} ({', '.join(p.name for p in paths)})" for key, paths in claimed.items() if len(paths) > 1]:
        problems.append(f"references with more than one SR image: {_listing(twice)}")
    if problems:
        raise PairingError("; ".join(problems))
    return [Pair(ref.key, claimed[ref.key][0], ref.path) for ref in refs]
