"""Label sheets of the synthetic benchmark, in the real datasets' formats.

Frames in the sheets are 1-based, as in the real files; the plan and
``truth.csv`` are 0-based. The workbooks are byte-reproducible: document
timestamps and zip entry dates are fixed.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd

from mepkg.atomic import atomic_output
from mepkg.constants import (CASME3_LABEL_SHEET, GENERIC_LABEL_FILE, SAMM_EMOTION_SHEET,
                             SAMM_INTERVAL_SHEET)
from mepkg.synth.motion import PATTERN_AUS
from mepkg.synth.plan import BenchmarkPlan

_AU_HELP = [
    '"L2 or R2" = Unilateral AU 2 on left side of face / right side of face',
    '"A2" = Asymmetric AU 2. Occurs on both sides of face but stronger on one side',
]
# preamble cells copied from the real workbooks (fixtures/sammlv_layout)
SAMM_LV_PREAMBLE = {
    "A1": "SAMM Long Videos Dataset - FACS Codes", "A3": "Symbol Key:", "A4": '"/" = or',
    "A6": "AU Help:", "A7": _AU_HELP[0],
    "F7": "NOTE: Subjects with Apex Frame not annotated were labelled as -1.", "A8": _AU_HELP[1],
}
SAMM_LV_HEADER_ROW = 10
SAMM_LV_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration",
                  "Type", "Action Units", "Notes"]
SAMM_MICRO_PREAMBLE = {
    "A1": "SAMM Dataset - Master FACS Codes",
    "E1": "(Note to the users: If you're using SAMM, please cite: Davison, A. K., Lansley, C., "
          "Costen, N., Tan, K., & Yap, M. H. (2016). SAMM: A spontaneous micro-facial movement "
          "dataset. IEEE Transactions on Affective Computing.)",
    "A3": "9/9/17 - New updates with Emotional and Objective Classes. For details please refer to: ",
    "I3": "arXiv preprint arXiv:1708.07549.",
    "E4": "(Note to the users: if you're using the emotional or objective classes, please cite: "
          "Davison, A. K., Merghani, W., & Yap, M. H. (2017). Objective Classes for Micro-Facial "
          "Expression Recognition. arXiv preprint arXiv:1708.07549.)",
    "A6": "Symbol Key:", "A7": '"/" = or',
    "A8": '"?" = some AU\'s continue for a while and have unclear offset',
    "A10": "AU Help:", "A11": _AU_HELP[0], "A12": _AU_HELP[1],
}
SAMM_MICRO_HEADER_ROW = 14
SAMM_MICRO_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame",
                     "Offset Frame", "Duration", "Micro", "Action Units", "Estimated Emotion",
                     "Objective Classes", "Notes"]
CASME3_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII"]
SAMM_MICRO_TYPE = "Micro - 1/2"

_FIXED_TIME = "2020-01-01T00:00:00Z"


def _save_reproducible(wb: openpyxl.Workbook, path: Path) -> None:
    """Save ``wb`` atomically with fixed timestamps, so equal content gives equal bytes."""
    buf = io.BytesIO()
    wb.save(buf)
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*",
                              rb"\g<1>" + _FIXED_TIME.encode(), data)
            dst.writestr(zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0)),
                         data, compress_type=zipfile.ZIP_DEFLATED)
    with atomic_output(path) as tmp:
        tmp.write_bytes(out.getvalue())


def _sheet(wb: openpyxl.Workbook, title: str, preamble: dict, header_row: int,
           header: list[str], rows: list[list]) -> None:
    ws = wb.create_sheet(title)
    for cell, text in preamble.items():
        ws[cell] = text
    for j, name in enumerate(header, start=1):
        ws.cell(row=header_row, column=j, value=name)
    for i, row in enumerate(rows, start=header_row + 1):
        for j, value in enumerate(row, start=1):
            if value is not None:
                ws.cell(row=i, column=j, value=value)


def _labelled(plan: BenchmarkPlan):
    """(video plan, 1-based number within the video, event) of micro and macro events."""
    for video in plan.videos:
        labelled = [e for e in video.events if e.type in ("micro", "macro")]
        for k, ev in enumerate(labelled, start=1):
            yield video, k, ev


def write_samm_sheets(plan: BenchmarkPlan, out: Path) -> list[Path]:
    """SAMM_LongVideos_V3_Release.xlsx and SAMM_Micro_FACS_Codes_v2.xlsx (1-based frames)."""
    long_rows, micro_rows = [], []
    for video, k, ev in _labelled(plan):
        filename = f"{video.video}_{k}"
        inducement = 1 + (int(video.video.rsplit("_", 1)[1]) - 1) % 7
        aus, objective = PATTERN_AUS[ev.pattern]
        kind = SAMM_MICRO_TYPE if ev.type == "micro" else "Macro"
        frames = [ev.onset + 1, ev.apex + 1, ev.offset + 1, ev.offset - ev.onset]
        long_rows.append([video.subject, filename, inducement, *frames, kind, aus, None])
        if ev.type == "micro":
            micro_rows.append([video.subject, filename, inducement, *frames, kind, aus,
                               ev.emotion_raw, objective, None])
    paths = [out / SAMM_INTERVAL_SHEET, out / SAMM_EMOTION_SHEET]
    for path, title, preamble, row, header, rows in (
            (paths[0], "Sheet1", SAMM_LV_PREAMBLE, SAMM_LV_HEADER_ROW, SAMM_LV_HEADER, long_rows),
            (paths[1], "MICRO_ONLY", SAMM_MICRO_PREAMBLE, SAMM_MICRO_HEADER_ROW, SAMM_MICRO_HEADER,
             micro_rows)):
        wb = openpyxl.Workbook()
        wb.remove(wb.active)
        _sheet(wb, title, preamble, row, header, rows)
        _save_reproducible(wb, path)
    return paths


def write_casme3_sheet(plan: BenchmarkPlan, out: Path) -> Path:
    """cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx: MEs only, 1-based, numbers as text (as the real one)."""
    rows = []
    for video, _, ev in _labelled(plan):
        if ev.type != "micro":
            continue
        aus, objective = PATTERN_AUS[ev.pattern]
        rows.append([video.subject, video.video, str(ev.onset + 1), str(ev.apex + 1),
                     str(ev.offset + 1), aus, ROMAN[objective - 1], ev.emotion_raw])
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    _sheet(wb, "label", {}, 1, CASME3_HEADER, rows)
    wb.create_sheet("Sheet1")     # the real workbook has two empty sheets too
    wb.create_sheet("Sheet3")
    path = out / CASME3_LABEL_SHEET
    _save_reproducible(wb, path)
    return path


def write_generic_labels(plan: BenchmarkPlan, out: Path) -> Path:
    """labels.csv of the generic layout: subject,video,onset,apex,offset,type,emotion (1-based)."""
    rows = [dict(subject=v.subject, video=v.video, onset=e.onset + 1, apex=e.apex + 1,
                 offset=e.offset + 1, type=e.type, emotion=e.emotion)
            for v, _, e in _labelled(plan)]
    path = out / GENERIC_LABEL_FILE
    with atomic_output(path) as tmp:
        pd.DataFrame(rows, columns=["subject", "video", "onset", "apex", "offset", "type",
                                    "emotion"]).to_csv(tmp, index=False)
    return path
