"""Atomic file outputs: write to a temporary name beside the target, then rename.

An interrupted job never leaves a file that looks complete: either the old
file (or none) is there, or the whole new one. ``check_output`` tells, before
any work starts, whether an output location can be written at all.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file is removed if the block raises.

    >>> with atomic_output("out.csv") as tmp:   # doctest: +SKIP
    ...     df.to_csv(tmp)
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a directory; give a file name", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        try:
            yield tmp
            os.replace(tmp, path)
        except OSError as err:
            if err.filename is not None and Path(err.filename) == tmp:
                err.filename = str(path)   # name the output, not the hidden temporary
            raise
    finally:
        if tmp.exists():
            tmp.unlink()


def write_csv(df, path: str | os.PathLike) -> Path:
    """Write a pandas DataFrame to CSV atomically (no index column)."""
    with atomic_output(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def check_output(path: str | os.PathLike, kind: str = "file", option: str = "--out") -> None:
    """Raise ValueError unless ``path`` can be written as a ``kind`` ("file" or "dir").

    Checked before any work starts: a file output must not be an existing
    folder, a folder output not an existing file, and the folder that will
    hold it (or its nearest existing ancestor, when it is still to be created)
    must be writable, probed with a temporary file; nothing is left behind.
    """
    path = Path(path)
    what = f"{option} {path}"
    if kind == "file" and path.is_dir():
        raise ValueError(f"{what} is a folder; give the name of a file (in it or elsewhere)")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise ValueError(f"{what} is a file; give a folder name")
    folder = path if kind == "dir" else path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what}: {existing} is a file, not a folder; choose another location")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".mepkg-write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"{what}: cannot write in {existing} ({err.strerror or err}); "
                         f"choose a writable location") from None


LOCK_NAME = ".mepkg.lock"


@contextlib.contextmanager
def locked_folder(folder: str | os.PathLike, option: str = "--out") -> Iterator[Path]:
    """Hold ``folder`` (made if needed) for one run: a second run into it fails at once.

    The lock is an advisory ``flock`` on ``folder/.mepkg.lock``, released when
    this process ends however it ends (no stale lock after a crash). A folder
    this call made is removed again if the run leaves nothing in it. Where the
    platform has no ``flock`` (Windows), nothing is locked.
    """
    from mepkg.inputs import InputError

    try:
        import fcntl
    except ImportError:   # no flock: outputs are still written atomically, one by one
        fcntl = None
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise InputError(f"{option} {folder}: another mepkg run is writing there "
                                 f"(it holds {lock}); wait for it to finish or choose another "
                                 f"{option}") from None
        yield folder
    finally:
        os.close(fd)
        if created and [p.name for p in folder.iterdir()] == [LOCK_NAME]:
            lock.unlink()
            folder.rmdir()
