"""The in-memory model shared by every dataset adapter, and the two tables.

dataset -> subjects -> videos -> events. Frame indices here are always
0-based indices at the video's *original* frame rate (label sheets are
1-based; adapters convert). The sampled rate appears only inside the model
stages: sampled index = original // frame_skip.

Tables written by ``mepkg labels`` / ``mepkg manifest``:

labels.csv    LABEL_COLUMNS, one row per event
manifest.csv  MANIFEST_COLUMNS, one row per video
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from mepkg.constants import EMOTIONS
from mepkg.inputs import MAX_FRAME, InputError

log = logging.getLogger(__name__)


LABEL_COLUMNS: list[str] = [
    "subject", "video", "onset", "apex", "offset", "type", "emotion_raw", "emotion",
]
MANIFEST_COLUMNS: list[str] = [
    "subject", "video", "video_id", "path", "fps", "n_frames", "n_missing",
]


def video_id(subject: str, video: str) -> str:
    """A file-system safe identifier unique across the dataset.

    SAMM-LV video names already start with the subject (``006_1``); CAS(ME)^3
    names are single letters, so the subject is prefixed (``spNO.1_a``).
    """
    subject, video = str(subject), str(video)
    name = video if video.startswith(subject + "_") else f"{subject}_{video}"
    return name.replace("/", "_").replace(" ", "_")


@dataclass(frozen=True)
class Event:
    """One labelled facial expression, original 0-based frames (inclusive)."""

    subject: str
    video: str
    onset: int
    apex: int          # -1 where the sheet does not annotate it
    offset: int
    type: str          # "micro" | "macro"
    emotion_raw: str   # as written in the sheet ("" for macro without one)
    emotion: str       # one of EMOTIONS ("" where unmapped, e.g. macro)


@dataclass
class Video:
    """One long video on disk (a frame folder or a video file)."""

    subject: str
    video: str
    path: str
    fps: float
    n_frames: int = 0
    n_missing: int = 0
    events: list[Event] = field(default_factory=list)

    @property
    def video_id(self) -> str:
        return video_id(self.subject, self.video)


# ---------------------------------------------------------------- label helpers
# Shared by the adapters (casme3, sammlv, generic). They work on a "raw" table
# with one row per sheet row: subject, video, onset, apex, offset (as written,
# 1-based), type, emotion_raw, and ``row``, the sheet row number used in messages.


# docs/method.md §1, CAS(ME)^3 Part A emotion map.
CASME3_EMOTION_MAP: dict[str, str] = {
    "happy": "positive",
    "anger": "negative", "disgust": "negative", "fear": "negative", "sad": "negative",
    "surprise": "surprise",
    "others": "others",
}
# docs/method.md §1, SAMM-LV ("Estimated Emotion" of SAMM_Micro_FACS_Codes_v2.xlsx).
SAMM_EMOTION_MAP: dict[str, str] = {
    "anger": "negative", "contempt": "negative", "disgust": "negative",
    "fear": "negative", "sadness": "negative",
    "happiness": "positive",
    "surprise": "surprise",
    "other": "others",
}
# Generic CSVs accept either dataset's names or the class names themselves.
GENERIC_EMOTION_MAP: dict[str, str] = {
    **CASME3_EMOTION_MAP, **SAMM_EMOTION_MAP, **{name: name for name in EMOTIONS},
}

RAW_COLUMNS: list[str] = ["subject", "video", "onset", "apex", "offset", "type",
                          "emotion_raw", "row"]


def merged_emotion_map(default: dict[str, str], extra: dict[str, str] | None) -> dict[str, str]:
    """``default`` overlaid with the user's ``extra`` map (keys case-insensitive).

    Raises ValueError when an extra mapping targets something that is not a class.
    """
    mapping = dict(default)
    for raw, mapped in (extra or {}).items():
        mapped_class = str(mapped).strip().lower()
        if mapped_class not in EMOTIONS:
            raise ValueError(f"emotion map {raw!r} -> {mapped!r}: the class must be one of "
                             f"{', '.join(EMOTIONS)}")
        mapping[str(raw).strip().lower()] = mapped_class
    return mapping


def cell_text(value) -> str:
    """A sheet cell as stripped text ("" for empty cells; 12.0 -> "12")."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def read_sheet_table(path: str | Path, required: Sequence[str]) -> pd.DataFrame:
    """Read the table of an .xlsx workbook whose header row holds ``required``.

    The header row is found by content (the first row, in the first worksheet
    that has one, holding every name in ``required``, case-insensitive), never
    by a fixed row number: the SAMM sheets have preambles of varying length.
    Returns one row per non-empty sheet row below the header, every cell as
    text (see ``cell_text``), columns named by the lower-cased header, plus
    ``row``, the Excel row number (1-based, as shown by Excel).
    """
    import zipfile

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"label sheet not found: {path}")
    wanted = [name.lower() for name in required]
    workbook = open_workbook(path)
    try:
        for sheet in workbook.worksheets:
            header: list[str] | None = None
            records = []
            try:
                rows = list(sheet.iter_rows(values_only=True))
            except (zipfile.BadZipFile, KeyError, EOFError, OSError, ValueError) as err:
                raise ValueError(f"{path}: worksheet {sheet.title!r} cannot be read "
                                 f"({type(err).__name__}); the workbook is damaged: copy it "
                                 f"again or save it as .xlsx") from None
            for number, values in enumerate(rows, start=1):
                cells = [cell_text(v) for v in values]
                if header is None:
                    names = [c.lower() for c in cells]
                    if all(name in names for name in wanted):
                        header = names
                        twice = sorted({n for n in names if n and names.count(n) > 1})
                        if twice:
                            raise InputError(f"{path}: worksheet {sheet.title!r} row {number}: "
                                             f"column(s) {', '.join(twice)} appear twice in "
                                             f"the header; keep one of each")
                    continue
                if any(cells):
                    records.append(dict(zip(header, cells), row=number))
            if header is not None:
                columns = [c for c in header if c] + ["row"]
                return pd.DataFrame.from_records(records, columns=columns)
    finally:
        workbook.close()
    raise ValueError(f"{path}: no header row holding the columns {', '.join(required)} "
                     f"in any worksheet; is this the right label file?")


def open_workbook(path: Path):
    """openpyxl workbook (read-only); ValueError naming the file when it is not an .xlsx."""
    import zipfile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the label sheet (.xlsx) itself")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: label sheet is empty (0 bytes); copy it again from the "
                         f"dataset release")
    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, EOFError, ValueError) as err:
        raise ValueError(f"{path}: not a readable .xlsx workbook ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:120]}); it is truncated, damaged or another "
                         f"format (a CSV renamed .xlsx?): copy it again or save it as .xlsx") from None


def require_file(path: str | Path, what: str, kind: str) -> Path:
    """``path`` as a Path; FileNotFoundError if absent, InputError if it is a folder.

    ``what``: what the file holds ("labels", "priors"); ``kind``: its format ("CSV", "YAML").
    """
    from mepkg.inputs import require_file as require

    return require(path, what, kind)


def read_csv_file(path: str | Path, what: str) -> pd.DataFrame:
    """A CSV read through :func:`mepkg.inputs.read_table` (one-line errors naming file and
    line): stripped text cells, empty cells as NaN."""
    from mepkg.inputs import read_table

    table = read_table(path, what).drop(columns="_line")
    return table.replace("", float("nan"))


def to_frame_number(text: str) -> int | None:
    """Parse a frame number cell ("12", "12.0", "-1"); None when it is not a number."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def clean_events(raw: pd.DataFrame, source: str | Path, *, onset_zero: str = "clip",
                 max_duration: int | None = None, drop_longer_than: int | None = None,
                 strict: bool = False) -> pd.DataFrame:
    """Convert sheet frames (1-based) to 0-based and deal with the bad rows.

    Always errors (ValueError naming the file and row): an empty subject or
    video cell, a negative frame (apex -1 = not annotated excepted).
    The documented quirks of the real sheets, each reported with a logging
    warning naming the row, subject and video (``strict``, for user-made
    files such as the generic CSV: an error naming the row instead):
    - onset or offset not a whole number: drop; apex not a number: -1 (not annotated).
    - onset > apex, onset > offset or apex > offset: drop.
    - the same event (subject, video, onset, apex, offset, type) twice: drop the repeat.
    Always warned, never errors:
    - onset 0: ``onset_zero="drop"`` drops the row (SAMM-LV marks extremely long
      samples so), ``"clip"`` keeps it with onset 0-based 0.
    - offset 0: use the apex as offset.
    - a micro event longer than ``max_duration`` frames (offset - onset): keep
      but warn; longer than ``drop_longer_than``: drop.
    Apex -1 (not annotated) stays -1; every other frame becomes sheet value - 1.
    Returns the table with integer onset/apex/offset (``row`` kept).
    """
    def bad_row(where: str, problem: str) -> None:
        if strict:
            raise ValueError(f"{where}: {problem}; fix or delete the row")
        log.warning("%s: %s; row dropped", where, problem)

    kept, seen = [], {}
    for rec in raw.to_dict("records"):
        where = f"{source} row {rec['row']} ({rec['subject']} {rec['video']})"
        for col in ("subject", "video"):
            if not str(rec[col]).strip():
                raise InputError(f"{source} row {rec['row']}: empty {col} cell; every event "
                                 f"needs a subject and a video: fill it or delete the row")
            if any(ord(c) < 32 or ord(c) == 127 for c in str(rec[col])):
                raise InputError(f"{source} row {rec['row']}: {col} {rec[col]!r} holds a "
                                 f"control character; names are plain text: fix the cell")
        onset, apex, offset = (to_frame_number(rec[c]) for c in ("onset", "apex", "offset"))
        for name, value in (("onset", onset), ("apex", apex), ("offset", offset)):
            if value is not None and abs(value) >= MAX_FRAME:
                raise InputError(f"{where}: {name} {rec[name]} is not a plausible frame number "
                                 f"(>= {MAX_FRAME:.0e}); is it in the right column?")
        if onset is None or offset is None:
            bad_row(where, f"onset {rec['onset']!r} / offset {rec['offset']!r} is not a whole "
                           f"frame number")
            continue
        if apex is None:
            if strict and str(rec["apex"]).strip():
                raise ValueError(f"{where}: apex {rec['apex']!r} is not a whole frame number; "
                                 f"fix the cell (empty or -1: not annotated)")
            log.warning("%s: apex %r not a number; set to -1 (not annotated)", where, rec["apex"])
            apex = -1
        for name, value in (("onset", onset), ("apex", apex), ("offset", offset)):
            if value < 0 and not (name == "apex" and value == -1):
                raise ValueError(f"{where}: negative {name} {value}; frames are 1-based "
                                 f"numbers >= 1 (apex -1: not annotated): fix or delete the row")
        if offset == 0:
            log.warning("%s: offset 0; using the apex %d as offset", where, apex)
            offset = apex
        if onset == 0:
            if onset_zero == "drop":
                log.warning("%s: onset 0 marks an extremely long sample; row dropped", where)
                continue
            log.warning("%s: onset 0 in a 1-based sheet; using frame 0 (0-based) for it "
                        "and for an apex of 0", where)
            onset = 1
            apex = max(apex, 1) if apex != -1 else -1
        if onset > offset or (apex != -1 and not onset <= apex <= offset):
            bad_row(where, f"onset {onset}, apex {apex}, offset {offset} are out of order "
                           f"(need onset <= apex <= offset)")
            continue
        key = (str(rec["subject"]), str(rec["video"]), onset, apex, offset, rec["type"])
        if key in seen:
            bad_row(where, f"the same event as row {seen[key]} (onset {onset}, offset {offset})")
            continue
        seen[key] = rec["row"]
        rec.update(onset=onset - 1, apex=apex - 1 if apex != -1 else -1, offset=offset - 1)
        duration = rec["offset"] - rec["onset"]
        if rec["type"] == "micro" and drop_longer_than is not None and duration > drop_longer_than:
            log.warning("%s: micro event of %d frames (> drop_longer_than %d); row dropped",
                        where, duration, drop_longer_than)
            continue
        if rec["type"] == "micro" and max_duration is not None and duration > max_duration:
            log.warning("%s: micro event of %d frames (> max_duration %d); kept, flagged",
                        where, duration, max_duration)
        kept.append(rec)
    table = pd.DataFrame.from_records(kept, columns=list(raw.columns)).assign(source=str(source))
    if not len(table):
        raise ValueError(f"{source}: no valid event remains ({len(raw)} row(s) read, every one "
                         f"dropped: see the warnings above); fix the rows or give the right file")
    return table.astype({"onset": int, "apex": int, "offset": int})


def map_emotions(events: pd.DataFrame, mapping: dict[str, str], source: str | Path) -> pd.DataFrame:
    """Add the ``emotion`` column; return the table in LABEL_COLUMNS order.

    Micro events need a raw emotion known to ``mapping`` (case-insensitive);
    unknown names raise ValueError listing them. A micro event without any raw
    emotion keeps emotion "" (warned). Macro events get their mapped emotion
    when there is one, else "".
    """
    keys = events["emotion_raw"].str.strip().str.lower()
    micro = events["type"] == "micro"
    unknown = sorted(set(events.loc[micro & (keys != "") & ~keys.isin(list(mapping)),
                                    "emotion_raw"]))
    if unknown:
        raise ValueError(f"{source}: unknown emotion(s) {', '.join(map(repr, unknown))}; map "
                         f"them to one of {', '.join(EMOTIONS)} with the config key "
                         f"`emotion_map` or the CLI option --emotion-map RAW=CLASS")
    no_emotion = int((micro & (keys == "")).sum())
    if no_emotion:
        log.warning("%s: %d micro event(s) without an emotion (emotion left empty)",
                    source, no_emotion)
    events = events.assign(emotion=keys.map(mapping).fillna(""))
    extra = [c for c in ("row", "source") if c in events.columns]
    return events[LABEL_COLUMNS + extra].reset_index(drop=True)


def check_columns(table: pd.DataFrame, required: Iterable[str], source: str | Path) -> None:
    """Raise ValueError naming the file and the missing columns."""
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)}; found "
                         f"{', '.join(map(str, table.columns))}")


def find_file(root: str | Path, name: str) -> Path:
    """``root/name`` if present, else the first file of that name under ``root``."""
    root = Path(root)
    if (root / name).is_file():
        return root / name
    found = sorted(p for p in root.rglob(name) if p.is_file())
    if not found:
        raise FileNotFoundError(f"{name} not found in {root} or below; pass the label "
                                f"file(s) explicitly (CLI --labels)")
    return found[0]


def trailing_number(name: str) -> int | None:
    """The number at the end of a file stem: "498.jpg" -> 498, "006_1_0001.jpg" -> 1."""
    match = re.search(r"(\d+)$", Path(name).stem)
    return int(match.group(1)) if match else None
