"""The one reading path for the tables users give: label, prediction and labels.csv files.

Every CSV a command reads (a generic dataset's labels.csv, the labels.csv of
``mepkg labels``/``manifest`` given to training, decoding and packaging,
predictions and ground truth given to ``evaluate``) goes through
:func:`read_table`, so that every problem is reported the same way: one
:class:`InputError` naming the file, the line and the value, and what to do.

Checked here, once for every reader: the file exists and is a file, is not
empty, is UTF-8 text (a BOM is accepted) without NUL bytes; the header names
each column once (compared stripped and case-insensitively); every row has as
many fields as the header; cells are stripped of surrounding spaces. Frame
numbers (:func:`frame_column`) are whole numbers, finite and below
``MAX_FRAME``; ``type`` cells are normalised (``MICRO``, ``micro ``,
``Micro - 1/2`` -> micro).

:class:`InputError` is the type of every "bad input" message: the CLI prints
it as one line (exit code 2), while an exception it does not expect (a
library's own ValueError, say) is reported as an internal error.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Sequence

import pandas as pd


class InputError(ValueError):
    """Bad input: the message names the file, row or value and says what to do."""


# A frame index above this is not a frame of any real recording (10^8 frames are
# almost 6 days at 200 fps): a typo, a timestamp or a value in the wrong column.
MAX_FRAME = 10 ** 8

EVENT_TYPES = ("micro", "macro")

# First bytes of the files most often given where a CSV is expected.
BINARY_SIGNATURES = {b"PK\x03\x04": "a zip archive (an Excel .xlsx workbook?)",
                     b"\x89HDF": "an HDF5 file (a mepkg .h5?)",
                     b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook",
                     b"%PDF": "a PDF document"}


def require_file(path: str | os.PathLike, what: str, kind: str = "CSV") -> Path:
    """``path`` as a Path; FileNotFoundError if absent, InputError if it is a folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such {what} file")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the {what} {kind} file itself")
    return path


def read_table(path: str | os.PathLike, what: str, required: Sequence[str] = (),
               lower_header: bool = True) -> pd.DataFrame:
    """A CSV file as a table of stripped strings ("" for empty cells), checked line by line.

    ``what`` says what the file holds ("labels", "predictions") for messages;
    ``required``: columns that must be present (InputError listing what is
    there otherwise). The header's names are stripped (and lower-cased with
    ``lower_header``). The returned table has ``_line``: each row's line in
    the file (the header is line 1), for messages naming the row.
    """
    path = require_file(path, what)
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{path}: {what} file is empty; it needs a header row and data rows")
    for signature, kind in BINARY_SIGNATURES.items():
        if data.startswith(signature):
            raise InputError(f"{path}: {what} file is {kind}, not a CSV; give the CSV file "
                             f"(or save the table as CSV)")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise InputError(f"{path}: {what} file is UTF-16 text; save it as UTF-8 CSV")
    if b"\0" in data:
        line = data[:data.index(b"\0")].count(b"\n") + 1
        raise InputError(f"{path} line {line}: a NUL byte; the file is binary or damaged: "
                         f"save it again as a plain-text CSV")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise InputError(f"{path} line {line}: {what} file is not UTF-8 text (byte "
                         f"{err.start}); save it as UTF-8 CSV") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    records, lines = [], []
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue   # blank line
            fields = [f.strip() for f in fields]
            if header is None:
                header = [f.lower() if lower_header else f for f in fields]
                _check_header(header, path, what)
                continue
            if len(fields) != len(header):
                raise InputError(f"{path} line {line}: {len(fields)} field(s), the header has "
                                 f"{len(header)} ({', '.join(header)}); check the row's commas "
                                 f"and quoting")
            records.append(fields)
            lines.append(line)
    except csv.Error as err:
        raise InputError(f"{path} line {reader.line_num}: not a well-formed CSV ({err}); check "
                         f"its quoting") from None
    table = pd.DataFrame(records, columns=range(len(header)), dtype=object)
    for number, name in enumerate(header):   # an unnamed column (a trailing comma) must be empty
        if not name:
            filled = table[number] != ""
            if filled.any():
                raise InputError(f"{path} line {lines[int(filled.to_numpy().argmax())]}: a value "
                                 f"in column {number + 1}, which the header does not name; name "
                                 f"the column or delete the value")
            table = table.drop(columns=number)
    table.columns = [name for name in header if name]
    missing = [c for c in required if c not in table.columns]
    if missing:
        separator = next((s for s in (";", "\t", "|") if len(header) == 1 and s in header[0]),
                         None)
        hint = (f"its columns are separated by {separator!r}: save it with commas"
                if separator else f"is this the {what} file?")
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; found "
                         f"{', '.join(header) or 'none'}; {hint}")
    table["_line"] = lines
    return table


def _check_header(header: list[str], path: Path, what: str) -> None:
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        key = name.lower()
        if not key:
            continue   # allowed while its cells are empty (read_table)
        if key in seen:
            raise InputError(f"{path} line 1: column {name!r} appears twice in the header "
                             f"(columns {seen[key]} and {number}); keep one of them")
        seen[key] = number


def whole_number(text: str, where: str, name: str, *, allow_empty: bool = False,
                 minimum: int | None = None) -> int | None:
    """A frame-number cell as int: "12", "12.0" -> 12; InputError naming ``where`` otherwise.

    Empty cells are None with ``allow_empty``. Values must be finite, whole and
    below MAX_FRAME in magnitude (and >= ``minimum`` when given).
    """
    text = str(text).strip()
    if not text:
        if allow_empty:
            return None
        raise InputError(f"{where}: {name} is empty; every row needs a whole frame number")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not value.is_integer():
        raise InputError(f"{where}: {name} {text!r} is not a whole frame number")
    if abs(value) >= MAX_FRAME:
        raise InputError(f"{where}: {name} {text} is not a plausible frame number (>= "
                         f"{MAX_FRAME:.0e}); is it in the right column?")
    if minimum is not None and value < minimum:
        raise InputError(f"{where}: {name} {int(value)} is below {minimum}; frames here are "
                         f"0-based indices: fix or delete the row")
    return int(value)


def frame_column(table: pd.DataFrame, column: str, path, *, allow_empty: bool = False,
                 fill: int = -1, minimum: int | None = None) -> pd.Series:
    """``table[column]`` as int64 frame numbers (see :func:`whole_number`); ``fill`` for empties."""
    values = []
    for text, line in zip(table[column], _lines(table)):
        value = whole_number(text, f"{path} line {line}", column, allow_empty=allow_empty,
                             minimum=minimum)
        values.append(fill if value is None else value)
    return pd.Series(values, index=table.index, dtype="int64")


def event_type(text: str, where: str) -> str:
    """``micro`` / ``MICRO `` / ``Micro - 1/2`` -> micro, likewise macro; else InputError."""
    lowered = str(text).strip().lower()
    for kind in EVENT_TYPES:
        if lowered.startswith(kind):
            return kind
    raise InputError(f"{where}: type {text!r} is neither micro ('Micro - 1/2') nor macro")


def check_text(table: pd.DataFrame, columns: Sequence[str], path) -> None:
    """InputError naming the line where a name column is empty."""
    for column in columns:
        empty = table[column].astype(str).str.strip() == ""
        if empty.any():
            line = _lines(table)[int(empty.to_numpy().argmax())]
            raise InputError(f"{path} line {line}: {column} is empty; every row needs a "
                             f"{column}: fill it or delete the row")


def read_labels_table(labels, what: str = "labels") -> pd.DataFrame:
    """A labels.csv (of ``mepkg labels`` / ``manifest``, or written alike) read and checked.

    ``labels``: a path or an already built DataFrame (checked the same way).
    Returns subject, video (text), onset, apex, offset (int64; apex -1 where
    empty), type (micro/macro), emotion (lower-case text, "" where empty) and
    ``_line``.
    """
    required = ["subject", "video", "onset", "offset", "type"]
    if isinstance(labels, pd.DataFrame):
        path = "labels table"
        table = labels.copy()
        missing = [c for c in required if c not in table.columns]
        if missing:
            raise InputError(f"{path}: lacks column(s) {', '.join(missing)}")
        table = table.astype({c: str for c in ("subject", "video", "type")})
        if "_line" not in table.columns:
            table["_line"] = range(2, len(table) + 2)
    else:
        path = labels
        table = read_table(labels, what, required=required)
    table = table.copy()
    for column in ("subject", "video"):
        table[column] = table[column].astype(str).str.strip()
    check_text(table, ["subject", "video"], path)
    lines = _lines(table)
    table["type"] = [event_type(t, f"{path} line {line}") for t, line in zip(table["type"], lines)]
    if "apex" not in table.columns:
        table["apex"] = ""
    for column in ("onset", "apex", "offset"):
        if not pd.api.types.is_integer_dtype(table[column]):
            table[column] = frame_column(table, column, path, allow_empty=column == "apex",
                                         minimum=-1 if column == "apex" else 0)
    bad = table[table["offset"] < table["onset"]]
    if len(bad):
        row = bad.iloc[0]
        raise InputError(f"{path} line {row['_line']}: onset {row['onset']} > offset "
                         f"{row['offset']}; fix or delete the row")
    emotion = table["emotion"] if "emotion" in table.columns else pd.Series("", index=table.index)
    table["emotion"] = emotion.fillna("").astype(str).str.strip().str.lower()
    table = table.reset_index(drop=True)
    table.attrs["source"] = str(path)
    return table


def _lines(table: pd.DataFrame) -> list:
    if "_line" in table.columns:
        return list(table["_line"])
    return list(range(2, len(table) + 2))


def check_finite_settings(config, where: str = "config") -> None:
    """InputError naming the first setting whose value is NaN or infinite.

    A schema's minimum/maximum never reject NaN (every comparison with it is
    false), so a configuration is checked for them once, after validation.
    """
    def walk(node, key: str):
        if isinstance(node, dict):
            for name, value in node.items():
                walk(value, f"{key}.{name}" if key else str(name))
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f"{key}[{i}]")
        elif isinstance(node, float) and not math.isfinite(node):
            raise InputError(f"{where}: bad value for '{key}': {node} is not a finite number; "
                             f"see the comments in config.yaml")

    walk(config, "")
