"""The finished segments of a long encode, kept beside the output so that an interrupted run can resume.

``<output>.parts/`` holds one file per segment and ``manifest.json``, which records the input's signature, the
settings and the segments written so far. A segment is written to a temporary file and renamed when complete, and
only then entered in the manifest (also replaced atomically): after a crash or Ctrl-C the manifest lists exactly
the segments that are whole. ``--resume`` continues only when input and settings are the ones recorded.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from lway_engine.atomic import atomic_write


class ResumeMismatch(ValueError):
    """The recorded segments belong to another input or other settings."""


class SegmentStore:
    """Segments of one output file; ``key`` (JSON-able) is what a resumed run must match."""

    def __init__(self, dest: Path, key: dict, resume: bool) -> None:
        self.folder = dest.parent / (dest.name + ".parts")
        self.manifest = self.folder / "manifest.json"
        self.key = json.loads(json.dumps(key))  # as it reads back from JSON
        self.segments: list[dict] = []
        if resume and self.manifest.is_file():
            recorded = json.loads(self.manifest.read_text())
            if recorded["key"] != self.key:
                changed = sorted(k for k in self.key.keys() | recorded["key"].keys()
                                 if self.key.get(k) != recorded["key"].get(k))
                raise ResumeMismatch(f"{self.folder} holds segments of a run with other {', '.join(changed)}; "
                                     "run without --resume to start over")
            self.segments = [s for s in recorded["segments"] if (self.folder / s["file"]).is_file()]
        elif self.folder.exists():
            shutil.rmtree(self.folder)

    @property
    def done(self) -> int:
        """Frames already in finished segments."""
        return sum(s["frames"] for s in self.segments)

    @property
    def files(self) -> list[Path]:
        return [self.folder / s["file"] for s in self.segments]

    def add(self, write: Callable[[Path], int], suffix: str) -> None:
        """``write(tmp)`` encodes the next segment (a ``suffix`` file) and returns its frame count; the segment is
        recorded once complete."""
        name = f"{len(self.segments):06d}{suffix}"
        frames = 0

        def run(tmp: Path) -> None:
            nonlocal frames
            frames = write(tmp)

        atomic_write(self.folder / name, run, suffix=suffix)
        self.segments.append({"file": name, "start": self.done, "frames": frames})
        body = json.dumps({"key": self.key, "segments": self.segments}, indent=1)
        atomic_write(self.manifest, lambda tmp: tmp.write_text(body))

    def remove(self) -> None:
        """Delete the segments once the joined output is in place."""
        shutil.rmtree(self.folder, ignore_errors=True)
