"""Where weights live on disk, and how they get there safely.

Every artefact is written to a temporary ``*.part`` file in its final folder, hashed, and only moved into place
(``os.replace``, atomic on POSIX and Windows) when its sha256 is the expected one. A reader therefore never sees a
half-written or corrupt file, a crash leaves at most a ``*.part`` file (removed on the next fetch), and concurrent
fetches of one entry serialise on a file lock.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from lway_engine.atomic import atomic_write


class ChecksumError(RuntimeError):
    """A produced or cached file does not have the sha256 the registry pins."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        super().__init__(f"sha256 mismatch for {path.name}: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


def lway_home() -> Path:
    """Root of lway-engine's cache: ``$LWAY_HOME`` or ``~/.cache/lway-engine``."""
    env = os.environ.get("LWAY_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lway-engine"


def weights_dir(name: str) -> Path:
    """Folder holding the cached artefacts of one registry entry."""
    return lway_home() / "weights" / name


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed so large checkpoints are never read into memory whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def entry_lock(name: str) -> Iterator[Path]:
    """Hold the per-entry lock (so two processes never produce one artefact at once); yields the entry's folder."""
    folder = weights_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".lock")):
        for part in folder.glob("*.part"):  # leftovers of an interrupted write
            part.unlink(missing_ok=True)
        yield folder


def produce_verified(dest: Path, produce: Callable[[Path], None], expected_sha256: str) -> None:
    """Run ``produce(tmp)``, check the sha256 of what it wrote, and only then move it to ``dest``."""

    def check(tmp: Path) -> None:
        actual = sha256_file(tmp)
        if actual != expected_sha256:
            raise ChecksumError(dest, expected_sha256, actual)

    atomic_write(dest, produce, check)
