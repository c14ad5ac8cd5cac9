"""Dataset adapters: the real CAS(ME)^3 sheet, SAMM-LV sheets, generic CSV, dataset scans."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest

from mepkg.cli import main as cli_main
from mepkg.datasets import plan_dataset, read_labels, scan_dataset, scan_manifest
from mepkg.datasets.common import LABEL_COLUMNS, MANIFEST_COLUMNS
from mepkg.datasets.generic import FolderRateError
from mepkg.manifest import build_manifest

from conftest import fixture_path, needs_fixture

CASME3_NAME = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
CASME3_SHEET = fixture_path("casme3", CASME3_NAME)
SAMM_LAYOUT = fixture_path("sammlv_layout")
needs_casme3 = needs_fixture("casme3", CASME3_NAME)

INTERVAL_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset",
                   "Duration", "Type", "Action Units", "Notes"]
FACS_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame",
               "Offset Frame", "Duration", "Micro", "Action Units", "Estimated Emotion",
               "Objective Classes", "Notes"]


def write_xlsx(path: Path, rows: list[list]) -> Path:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    workbook.save(path)
    return path


def write_frames(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True)
    for name in names:
        cv2.imwrite(str(folder / name), np.zeros((8, 8, 3), np.uint8))


# ---------------------------------------------------------------- CAS(ME)^3, real sheet
@pytest.fixture(scope="module")
def casme3_labels():
    return read_labels("casme3", CASME3_SHEET)


@needs_casme3
def test_casme3_real_sheet_counts(casme3_labels):
    labels = casme3_labels
    assert list(labels.columns) == LABEL_COLUMNS
    assert len(labels) == 858
    assert labels.subject.nunique() == 94
    assert labels.groupby(["subject", "video"]).ngroups == 461
    assert labels.emotion.value_counts().to_dict() == {
        "negative": 456, "surprise": 187, "others": 160, "positive": 55}
    assert set(labels.type) == {"micro"}


@needs_casme3
def test_casme3_frames_are_zero_based(casme3_labels):
    first = casme3_labels.iloc[0]
    assert (first.subject, first.video, first.onset, first.apex, first.offset) == \
        ("spNO.1", "a", 354, 358, 359)          # sheet: 355, 359, 360
    # offset 0 in the sheet -> apex (sheet apex 1824 and 2363)
    e40 = casme3_labels[(casme3_labels.subject == "spNO.40") & (casme3_labels.video == "e")]
    fixed = e40[e40.onset.isin([1811, 2326])]
    assert fixed.offset.tolist() == [1823, 2362]
    assert (fixed.offset == fixed.apex).all()
    # onset 0 and apex 0 (spNO.216 e) are read as frame 0, not -1
    e216 = casme3_labels[(casme3_labels.subject == "spNO.216") & (casme3_labels.video == "e")]
    assert e216[["onset", "apex", "offset"]].values.tolist()[0] == [0, 0, 24]
    # the upper-case "J" of spNO.14 is one video name with the rest
    assert "J" not in set(casme3_labels.video)


@needs_casme3
def test_casme3_bad_rows_are_warned(caplog):
    with caplog.at_level(logging.WARNING):
        labels = read_labels("casme3", CASME3_SHEET, drop_longer_than=3000)
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert any("spNO.149 d" in m and "row 130" in m for m in dropped)
    assert any("spNO.216 d" in m for m in dropped)
    assert any("spNO.214 c" in m and "3455" in m for m in dropped)   # drop_longer_than
    assert len(labels) == 857
    assert sum("spNO.40 e" in r.getMessage() and "offset 0" in r.getMessage()
               for r in caplog.records) == 2


@needs_casme3
def test_casme3_long_interval_kept_and_flagged(casme3_labels, caplog):
    row = casme3_labels[(casme3_labels.subject == "spNO.214") & (casme3_labels.video == "c")]
    assert (row.offset - row.onset).tolist() == [3455]
    with caplog.at_level(logging.WARNING):
        read_labels("casme3", CASME3_SHEET, max_duration=400)
    assert "spNO.214 c" in caplog.text and "flagged" in caplog.text


@needs_casme3
def test_cli_labels_writes_the_table(tmp_path):
    out = tmp_path / "labels.csv"
    assert cli_main(["labels", "--dataset", "casme3", "--labels", str(CASME3_SHEET),
                     "--out", str(out)]) == 0
    table = pd.read_csv(out, dtype={"subject": str, "video": str})
    assert len(table) == 858 and list(table.columns) == LABEL_COLUMNS


def test_missing_sheet_and_missing_header(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.xlsx"):
        read_labels("casme3", tmp_path / "absent.xlsx")
    other = write_xlsx(tmp_path / "other.xlsx", [["Name", "Value"], ["a", 1]])
    with pytest.raises(ValueError, match=r"other\.xlsx.*Subject, Filename, Onset"):
        read_labels("casme3", other)


# ---------------------------------------------------------------- SAMM-LV
@needs_fixture("sammlv_layout")
def test_samm_layout_fixtures():
    sheets = [SAMM_LAYOUT / "SAMM_Micro_FACS_Codes_v2.xlsx",
              SAMM_LAYOUT / "SAMM_LongVideos_V3_Release.xlsx"]
    labels = read_labels("sammlv", sheets)            # either order
    assert labels.equals(read_labels("sammlv", sheets[::-1]))
    assert len(labels) == 10
    assert labels.subject.tolist()[:2] == ["001", "001"]
    assert labels.video.tolist()[:2] == ["001_2", "001_3"]
    assert labels.emotion_raw.unique().tolist() == ["Happiness"]
    assert set(labels.emotion) == {"positive"}
    assert (labels.onset.tolist()[0], labels.apex.tolist()[0], labels.offset.tolist()[0]) == \
        (0, 9, 99)


def samm_sheets(folder: Path, facs_emotions: dict[str, str]) -> list[Path]:
    """A hand-made interval sheet (3 preamble rows) and FACS sheet (1 preamble row)."""
    intervals = write_xlsx(folder / "SAMM_LongVideos_V3_Release.xlsx", [
        ["SAMM Long Videos"], [], ["Symbol Key:"],
        INTERVAL_HEADER,
        [6, "006_1_1", 1, 101, 105, 110, 9, "Micro - 1/2", "12", None],
        ["006", "006_1_2", 1, 0, 50, 900, 900, "Micro - 1/2", "4", "long"],    # onset 0
        ["006", "006_1_3", 1, 301, 311, 0, 0, "Micro - 1/2", "4", None],       # offset 0
        ["006", "006_1_4", 1, 401, -1, 420, 19, "Micro - 1/2", "4", None],     # no apex
        ["006", "006_1_5", 1, 501, 510, 700, 199, "Macro", "12", None],
        ["007", "007_3_1", 1, 11, 15, 30, 19, "Micro - 1/2", "1+2", None],
    ])
    facs = write_xlsx(folder / "SAMM_Micro_FACS_Codes_v2.xlsx", [
        ["SAMM Dataset - Master FACS Codes"],
        FACS_HEADER,
        *[["006", name, 1, 0, 0, 0, 0, "Micro - 1/2", "4", emotion, 1, None]
          for name, emotion in facs_emotions.items()],
    ])
    return [intervals, facs]


SAMM_EMOTIONS = {"006_1_1": "Happiness", "006_1_2": "Anger", "006_1_3": "contempt ",
                 "006_1_4": "Other", "007_3_1": "Surprise"}


def test_samm_hand_made_sheets(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        labels = read_labels("sammlv", samm_sheets(tmp_path, SAMM_EMOTIONS))
    assert "onset 0" in caplog.text and "006 006_1" in caplog.text
    rows = labels[["subject", "video", "onset", "apex", "offset", "type", "emotion"]]
    assert rows.values.tolist() == [
        ["006", "006_1", 100, 104, 109, "micro", "positive"],
        ["006", "006_1", 300, 310, 310, "micro", "negative"],   # offset 0 -> apex
        ["006", "006_1", 400, -1, 419, "micro", "others"],      # apex -1 stays -1
        ["006", "006_1", 500, 509, 699, "macro", ""],
        ["007", "007_3", 10, 14, 29, "micro", "surprise"],
    ]


def test_samm_unknown_emotion(tmp_path):
    sheets = samm_sheets(tmp_path, {**SAMM_EMOTIONS, "006_1_1": "Confused"})
    with pytest.raises(ValueError, match=r"SAMM_Micro_FACS_Codes_v2\.xlsx.*'Confused'.*"
                                         r"--emotion-map"):
        read_labels("sammlv", sheets)
    labels = read_labels("sammlv", sheets, emotion_map={"Confused": "others"})
    assert labels.emotion.iloc[0] == "others"


def test_samm_needs_both_sheets(tmp_path):
    intervals, _ = samm_sheets(tmp_path, SAMM_EMOTIONS)
    with pytest.raises(ValueError, match="two label files"):
        read_labels("sammlv", [intervals])
    with pytest.raises(ValueError, match="Estimated Emotion"):
        read_labels("sammlv", [intervals, intervals])


# ---------------------------------------------------------------- generic CSV
def write_generic_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("subject,video,onset,apex,offset,type,emotion\n" + "\n".join(rows) + "\n")
    return path


def test_generic_csv(tmp_path):
    path = write_generic_csv(tmp_path / "labels.csv", [
        "s01,v1,11,15,20,micro,happy",
        "s01,v1,31,,40,Micro,Sadness",
        "s01,v2,5,8,9,micro,surprise",
        "s02,v1,50,60,200,macro,",
    ])
    labels = read_labels("generic", path)
    assert labels[["subject", "video", "onset", "apex", "offset", "type", "emotion"]
                  ].values.tolist() == [
        ["s01", "v1", 10, 14, 19, "micro", "positive"],
        ["s01", "v1", 30, -1, 39, "micro", "negative"],
        ["s01", "v2", 4, 7, 8, "micro", "surprise"],
        ["s02", "v1", 49, 59, 199, "macro", ""],
    ]


def test_generic_csv_errors(tmp_path):
    path = write_generic_csv(tmp_path / "labels.csv", ["s01,v1,11,15,20,micro,bored"])
    with pytest.raises(ValueError, match=r"labels\.csv.*'bored'"):
        read_labels("generic", path)
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,video,onset,offset\ns,v,1,2\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*apex.*type.*emotion"):
        read_labels("generic", bad)


# ---------------------------------------------------------------- scans
def test_scan_casme3(tmp_path, caplog):
    write_frames(tmp_path / "spNO.1" / "a" / "color", [f"{i}.jpg" for i in range(6)])
    write_frames(tmp_path / "spNO.1" / "b" / "color", ["0.jpg", "1.jpg", "3.jpg"])   # 2 missing
    (tmp_path / "error_info_damaged_image_partA.txt").write_text(
        "spNO.1 A 4.jpg  the image cannot open\nspNO.1 a 5.jpg  the image cannot open\n")
    write_xlsx(tmp_path / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", [
        ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"],
        ["spNO.1", "a", 2, 3, 5, "4", "III", "disgust"],
        ["spNO.1", "B", 1, 2, 3, "12", "I", "happy"],
        ["spNO.2", "c", 1, 2, 3, "12", "I", "Others"],      # not on disk
    ])
    with caplog.at_level(logging.WARNING):
        labels, manifest = scan_dataset("casme3", tmp_path)
    assert "1 label row(s) of 1 video(s) not on disk" in caplog.text
    assert "spNO.2 c" in caplog.text
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert manifest[["video_id", "fps", "n_frames", "n_missing"]].values.tolist() == [
        ["spNO.1_a", 30.0, 6, 2], ["spNO.1_b", 30.0, 4, 1]]
    assert manifest.path.tolist()[0] == str(tmp_path / "spNO.1" / "a" / "color")
    assert labels[["video", "onset", "emotion"]].values.tolist() == [
        ["a", 1, "negative"], ["b", 0, "positive"]]


def test_scan_sammlv(tmp_path):
    samm_sheets(tmp_path, SAMM_EMOTIONS)
    write_frames(tmp_path / "SAMM_longvideos" / "006_1",
                 [f"006_1_{n:04d}.jpg" for n in (1, 2, 3, 5)])
    labels, manifest = scan_dataset("sammlv", tmp_path)
    assert manifest[["subject", "video", "fps", "n_frames", "n_missing"]].values.tolist() == [
        ["006", "006_1", 200.0, 5, 1]]
    assert set(labels.video) == {"006_1"} and len(labels) == 4    # 007_3 is not on disk


def write_avi(path: Path, fps: float = 25.0, n: int = 7) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (8, 8))
    for _ in range(n):
        writer.write(np.zeros((8, 8, 3), np.uint8))
    writer.release()
    return path


def generic_root(root: Path) -> Path:
    """A generic root: s01 v1 a 25 fps video file, s01 v2 a frame folder."""
    root.mkdir(parents=True, exist_ok=True)
    write_generic_csv(root / "labels.csv", ["s01,v1,2,3,4,micro,happy",
                                            "s01,v2,1,2,3,micro,fear"])
    write_avi(root / "videos" / "s01" / "v1.avi")
    write_frames(root / "videos" / "s01" / "v2", ["000.png", "001.png"])
    return root


def test_scan_generic(tmp_path):
    """Frame folders get folder_fps; a video file keeps its own rate."""
    labels, manifest = scan_dataset("generic", generic_root(tmp_path), folder_fps=200)
    assert manifest[["video_id", "fps", "n_frames", "n_missing"]].values.tolist() == [
        ["s01_v1", 25.0, 7, 0], ["s01_v2", 200.0, 2, 0]]
    assert len(labels) == 2


@pytest.mark.parametrize("folder_fps", [None, 0])
def test_scan_generic_frame_folder_needs_folder_fps(tmp_path, folder_fps):
    """No rate is guessed for a frame folder: the error names it (plan_dataset: the setting)."""
    root = generic_root(tmp_path)
    folder = root / "videos" / "s01" / "v2"
    with pytest.raises(FolderRateError, match=re.escape(f"{folder}: a frame folder has no "
                                                        f"frame rate")):
        scan_dataset("generic", root, folder_fps=folder_fps)
    with pytest.raises(ValueError) as error:
        plan_dataset("generic", root, folder_fps=folder_fps)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{folder}: a frame folder has no frame rate")
    assert "dataset.folder_fps" in message and "folder_fps=200" in message


def test_scan_generic_video_files_need_no_folder_fps(tmp_path):
    write_generic_csv(tmp_path / "labels.csv", ["s01,v1,2,3,4,micro,happy"])
    write_avi(tmp_path / "videos" / "s01" / "v1.avi", fps=50.0)
    for folder_fps in (None, 200):    # folder_fps does not override a video file's rate
        _, manifest = plan_dataset("generic", tmp_path, folder_fps=folder_fps)
        assert manifest[["video_id", "fps"]].values.tolist() == [["s01_v1", 50.0]]


def test_folder_fps_leaves_casme3_and_sammlv_rates(tmp_path):
    write_frames(tmp_path / "casme3" / "spNO.1" / "a" / "color", ["0.jpg", "1.jpg"])
    write_frames(tmp_path / "samm" / "SAMM_longvideos" / "006_1", ["006_1_0001.jpg"])
    assert scan_manifest("casme3", tmp_path / "casme3", folder_fps=100).fps.tolist() == [30.0]
    assert scan_manifest("sammlv", tmp_path / "samm", folder_fps=100).fps.tolist() == [200.0]


def test_build_manifest_writes_folder_fps(tmp_path):
    """Rule build_manifest's function: the manifest's fps column is folder_fps."""
    root = generic_root(tmp_path / "root")
    build_manifest("generic", root, tmp_path / "labels.csv", tmp_path / "manifest.csv",
                   videos=["s01_v1", "s01_v2"], folder_fps=200)
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    assert manifest[["video_id", "fps"]].values.tolist() == [["s01_v1", 25.0],
                                                             ["s01_v2", 200.0]]


def test_scan_empty_frame_folder(tmp_path):
    (tmp_path / "SAMM_longvideos" / "006_1").mkdir(parents=True)
    with pytest.raises(ValueError, match="006_1"):
        scan_dataset("sammlv", tmp_path)


def test_cli_manifest(tmp_path):
    write_generic_csv(tmp_path / "labels.csv", ["s01,v2,1,2,3,micro,fear"])
    write_frames(tmp_path / "videos" / "s01" / "v2", ["1.jpg", "2.jpg", "3.jpg"])
    out = tmp_path / "out"
    assert cli_main(["manifest", "--dataset", "generic", "--root", str(tmp_path),
                     "--folder-fps", "200", "--out", str(out)]) == 0
    manifest = pd.read_csv(out / "manifest.csv")
    assert manifest.n_frames.tolist() == [3] and manifest.fps.tolist() == [200.0]
    assert len(pd.read_csv(out / "labels.csv")) == 1


def test_sampled_rate_warning_against_the_protocols():
    from mepkg.manifest import sampled_rate_warning
    assert sampled_rate_warning([200.0, 200.0], 7, "sammlv") is None       # 28.6 frames/s
    assert sampled_rate_warning([30.0], 1, "casme3") is None               # 30
    assert sampled_rate_warning([0.0], 7, "generic") is None               # rate unknown
    text = sampled_rate_warning([30.0, 200.0], 7, "generic")               # 4.3 frames/s
    assert "videos at 30 fps with features.frame_skip 7 are sampled at 4.3 frames/s" in text
    assert "set features.frame_skip 1" in text
    assert "frame_skip 4" in sampled_rate_warning([120.0], 1, "generic")   # 120 -> 30
