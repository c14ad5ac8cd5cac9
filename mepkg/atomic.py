"""Atomic file outputs: write to a temporary name beside the target, then rename.

An interrupted job never leaves a file that looks complete: either the old
file (or none) is there, or the whole new one.
"""

from __future__ import annotations

import contextlib
import os
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_csv(df, path: str | os.PathLike) -> Path:
    """Write a pandas DataFrame to CSV atomically (no index column)."""
    with atomic_output(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)
