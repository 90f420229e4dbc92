"""One way to write any output file: never half-written, never visible before it is complete.

The writer fills a temporary ``*.part`` file in the destination folder; it is flushed to disk and renamed over
the destination (``os.replace`` is atomic on POSIX and Windows). A crash leaves at most a ``*.part`` file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(dest: Path, write: Callable[[Path], None], check: Callable[[Path], None] | None = None,
                 suffix: str = "") -> None:
    """``write(tmp)``, then ``check(tmp)`` (raise to reject the file), then move it to ``dest``.

    ``suffix`` is appended to the temporary name for writers that pick a format from the extension.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part" + suffix, dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if check is not None:
            check(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; results should get the user's usual mode
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
