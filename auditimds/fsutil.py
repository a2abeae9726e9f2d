"""Files replaced whole or not at all.

`atomic_write` is the one write-temp-fsync-rename of the package (state files, the notification state, the
metrics textfile).  This module imports nothing from auditimds, so every stage may use it without breaking
the one-way flow source → audit → ecs → rules → alerts.
"""

from __future__ import annotations

import os
import tempfile
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write(path: PathLike, data: bytes, mode: int = 0o600) -> None:
    """Replace the file `path` by one holding exactly `data`, with permission bits `mode` (whatever the umask).

    `data` goes to a temporary file in the same directory (`.<name>.XXXXXX.tmp`), which is fsynced, renamed
    over `path`, and then the directory is fsynced so that the rename itself survives a crash: a reader, or the
    file after a power loss, has the old content or the new one, never a mix.  The directory must exist.

    Raises OSError when the file cannot be written; `path` is then untouched (its old content, or still no
    file) and the temporary file is removed.  A directory that cannot be fsynced (some filesystems) is not an
    error: the rename is done."""
    target = os.fspath(path)
    directory = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def fsync_dir(directory: PathLike) -> None:
    """fsync the directory `directory` (its entries: a rename, a new file); errors are ignored, some
    filesystems cannot fsync a directory."""
    try:
        dfd = os.open(os.fspath(directory), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
