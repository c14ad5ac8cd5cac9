"""Messages and progress bars on one terminal: a line is never glued onto a bar.

A tqdm bar redraws its line with carriage returns and no newline, so a
warning or error printed while it is drawn lands inside the bar's line.
:class:`BarSafeHandler` (the CLI's logging handler) and :func:`write_line`
(the CLI's error lines) write through ``tqdm.write``, which clears the bars
on that stream, writes the line and draws the bars again below it.
"""

from __future__ import annotations

import logging
import sys


def write_line(text: str, stream=None) -> None:
    """Write one line to ``stream`` (stderr), below any tqdm bar drawn on it."""
    stream = stream or sys.stderr
    try:
        from tqdm import tqdm
    except ImportError:   # tqdm is a dependency; plain print when it cannot load
        print(text, file=stream)
        return
    tqdm.write(text, file=stream)
    stream.flush()


class BarSafeHandler(logging.StreamHandler):
    """A StreamHandler whose records never land inside a progress bar's line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_line(self.format(record), self.stream)
        except Exception:   # logging must not raise; same policy as StreamHandler
            self.handleError(record)
