"""One way to write any output file: never half-written, never visible before it is complete.

The writer fills a temporary ``*.part`` file in the destination folder; it is flushed to disk and renamed over
the destination (``os.replace`` is atomic on POSIX and Windows). A crash leaves at most a ``*.part`` file, named
after the host and process that wrote it, so that a relaunch can remove the ones whose writer is gone
(``remove_stale_parts``) without touching those another live process (a torchrun rank) is writing.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path


def _writer_tag() -> str:
    return f"{socket.gethostname().replace('.', '_')}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_parts(folder: Path) -> int:
    """Delete the ``*.part`` temporaries in ``folder`` left by dead processes of this host; returns how many.
    Temporaries of other hosts (a shared file system) and of live processes are left alone."""
    host, removed = _writer_tag().rsplit("-", 1)[0], 0
    for path in folder.glob("*.part*") if folder.is_dir() else ():
        _, _, tagged = path.name.rpartition(f".{host}-")
        pid = tagged.split(".", 1)[0]
        if tagged and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def writable_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents) and check that files can be written there, raising ``ValueError`` with
    the reason: a command checks its output folder before the work, not after it when the first write fails."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{folder}: cannot create the output folder ({exc.strerror or exc})") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{folder}: the output folder is not writable (permissions or a read-only file system)")


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
    fd, tmp_name = tempfile.mkstemp(prefix=f"{dest.name}.{_writer_tag()}.", suffix=".part" + suffix,
                                    dir=dest.parent)
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
