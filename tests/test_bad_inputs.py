"""Damaged or mistaken inputs through every `mepkg` sub-command and the workflow config.

Each case runs the real command (``python -m mepkg``) on small inputs made in
tmp_path and checks the one error path: exit code 2, one line
``mepkg <command>: error: ...`` naming the offending file/row/value, no
traceback, and no output file left behind (not even a hidden temporary).
Cases of the commands that import PyTorch or SciPy (model files, decode,
spot, landmarks), and the long tables of CSV cases, call ``mepkg.cli.main``
in this process instead (fixture ``cli``): the same parser and error path,
without paying an interpreter and those imports per case.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import (CASME3_HEADER, ROOT, casme3_sheet, copy_workflow, fixture_path, frame_folder,
                      needs_fixture, small_model_file, snakemake, write_xlsx)

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}

GENERIC_HEADER = "subject,video,onset,apex,offset,type,emotion\n"
GOOD_ROW = "s1,v1,10,12,20,micro,happy\n"
PRED_HEADER = "subject,video,onset,offset,emotion\n"


def mepkg(*args, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mepkg", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli(capsys):
    """``mepkg`` in this process: ``cli(*args)`` -> CompletedProcess-like (code, out, err)."""
    from mepkg.cli import main

    def run(*args) -> subprocess.CompletedProcess:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:   # argparse errors
            code = exit_.code
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)
    return run


def assert_one_line_error(proc, command: str, *expected: str, code: int = 2) -> str:
    """Exit ``code``, no traceback, exactly one error line naming every ``expected``."""
    err = proc.stderr
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    line = errors[0]
    assert line.startswith(f"mepkg {command}: error: "), line
    for text in expected:
        assert text in line, f"{text!r} not in {line!r}"
    assert proc.returncode == code, (proc.returncode, err)
    return line


def assert_nothing_written(*paths: Path) -> None:
    for path in paths:
        path = Path(path)
        assert not path.is_file(), f"{path} was written"
        folder = path.parent
        if folder.is_dir():
            leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
            assert not leftovers, leftovers


# ---------------------------------------------------------------- inputs made on the fly
def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


# ---------------------------------------------------------------- labels
def _labels_case(tmp_path, make, dataset="generic"):
    files = make(tmp_path)
    files = files if isinstance(files, list) else [files]
    return ["labels", "--dataset", dataset, "--labels", *files, "--out", tmp_path / "out.csv"]


GENERIC_CASES = {
    # id: (csv body, expected text in the error line)
    "negative-onset": (GENERIC_HEADER + GOOD_ROW + "s1,v1,-5,2,9,micro,happy\n",
                       ["row 3", "negative onset -5"]),
    "duplicated-row": (GENERIC_HEADER + GOOD_ROW + GOOD_ROW, ["row 3", "same event as row 2"]),
    "empty-subject": (GENERIC_HEADER + GOOD_ROW + ",v1,30,32,40,micro,happy\n",
                      ["row 3", "empty subject"]),
    "empty-video": (GENERIC_HEADER + "s1,,30,32,40,micro,happy\n", ["row 2", "empty video"]),
    "out-of-order": (GENERIC_HEADER + "s1,v1,30,50,40,micro,happy\n",
                     ["row 2", "out of order"]),
    "non-integer-frame": (GENERIC_HEADER + "s1,v1,30.5,32,40,micro,happy\n",
                          ["row 2", "'30.5'", "whole frame number"]),
    "text-frame": (GENERIC_HEADER + "s1,v1,abc,32,40,micro,happy\n", ["row 2", "'abc'"]),
    "bad-apex": (GENERIC_HEADER + "s1,v1,30,x,40,micro,happy\n", ["row 2", "apex 'x'"]),
    "only-row-invalid": (GENERIC_HEADER + "s1,v1,50,45,40,micro,happy\n", ["row 2"]),
    "header-only": (GENERIC_HEADER, ["no valid event remains"]),
    "missing-column": ("subject,video,onset,offset,type,emotion\ns1,v1,1,2,micro,happy\n",
                       ["missing column(s) apex"]),
    "bad-type": (GENERIC_HEADER + "s1,v1,10,12,20,mega,happy\n", ["line 2", "'mega'"]),
    "unknown-emotion": (GENERIC_HEADER + "s1,v1,10,12,20,micro,angry\n",
                        ["unknown emotion(s) 'angry'", "--emotion-map"]),
    "zero-byte": ("", ["label file is empty"]),
    "not-utf8": (GENERIC_HEADER.encode() + "s1,v1,10,12,20,micro,h\xe4ppy\n".encode("latin-1"),
                 ["not UTF-8"]),
    "duplicated-header": ("subject,video,onset,apex,offset,type,emotion,onset\n"
                          "s1,v1,10,12,20,micro,happy,500\n",
                          ["line 1", "column 'onset' appears twice", "columns 3 and 8"]),
    "duplicated-header-case": ("Subject,video,onset,apex,offset,type,emotion,subject \n"
                               "s1,v1,10,12,20,micro,happy,s2\n", ["'subject' appears twice"]),
    "ragged-long-row": (GENERIC_HEADER + GOOD_ROW + "s1,v1,30,32,40,micro,happy,extra\n",
                        ["line 3", "8 field(s), the header has 7"]),
    "ragged-short-row": (GENERIC_HEADER + "s1,v1,30\n", ["line 2", "3 field(s)"]),
    "nul-in-subject": (GENERIC_HEADER.encode() + b"s\x001,v1,10,12,20,micro,happy\n",
                       ["line 2", "NUL byte"]),
    "huge-onset": (GENERIC_HEADER + "s1,v1,1e12,1e12,1e12,micro,happy\n",
                   ["row 2", "onset 1e12", "not a plausible frame number"]),
    "23-digit-offset": (GENERIC_HEADER + "s1,v1,10,12,12345678901234567890123,micro,happy\n",
                        ["row 2", "offset 12345678901234567890123", "plausible"]),
    "nan-onset": (GENERIC_HEADER + "s1,v1,nan,12,20,micro,happy\n", ["row 2", "'nan'"]),
    "inf-offset": (GENERIC_HEADER + "s1,v1,10,12,inf,micro,happy\n", ["row 2", "'inf'"]),
    "unclosed-quote": (GENERIC_HEADER + 's1,"v1,10,12,20,micro,happy\n', ["labels.csv"]),
    "semicolons": (GENERIC_HEADER.replace(",", ";") + "s1;v1;10;12;20;micro;happy\n",
                   ["separated by ';': save it with commas"]),
    "utf-16": ((GENERIC_HEADER + GOOD_ROW).encode("utf-16"), ["UTF-16 text", "UTF-8"]),
    "trailing-comma": (GENERIC_HEADER + "s1,v1,10,12,20,micro,happy,\n",
                       ["line 2", "8 field(s)"]),
    "value-in-unnamed-column": (GENERIC_HEADER.replace("\n", ",\n") + GOOD_ROW.replace("\n", ",\n")
                                + "s1,v1,30,32,40,micro,happy,x\n",
                                ["line 3", "column 8, which the header does not name"]),
}


@pytest.mark.parametrize("case", list(GENERIC_CASES))
def test_labels_generic_csv(tmp_path, case, cli):
    body, expected = GENERIC_CASES[case]
    csv = write(tmp_path / "labels.csv", body)
    proc = cli(*_labels_case(tmp_path, lambda _: csv))
    assert_one_line_error(proc, "labels", *expected)
    assert_nothing_written(tmp_path / "out.csv")


def test_labels_generic_csv_normalises_type_case_and_spaces(tmp_path):
    """``MICRO``, `` micro `` and a subject written with spaces: read as micro and s1."""
    import pandas as pd

    csv = write(tmp_path / "labels.csv", GENERIC_HEADER + " s1 ,v1,10,12,20,MICRO,happy\n"
                                                          "s1,v1,30,32,40, micro ,Happy \n")
    proc = mepkg(*_labels_case(tmp_path, lambda _: csv))
    assert proc.returncode == 0, proc.stderr
    labels = pd.read_csv(tmp_path / "out.csv", dtype=str)
    assert labels[["subject", "type", "emotion"]].values.tolist() == [
        ["s1", "micro", "positive"], ["s1", "micro", "positive"]]


def test_labels_generic_csv_exported_with_trailing_commas(tmp_path):
    """A spreadsheet export ending every line with a comma: the empty column is ignored."""
    csv = write(tmp_path / "labels.csv", GENERIC_HEADER.replace("\n", ",\n")
                + GOOD_ROW.replace("\n", ",\n"))
    proc = mepkg(*_labels_case(tmp_path, lambda _: csv))
    assert proc.returncode == 0, proc.stderr


def test_labels_casme3_sheet_duplicated_header(tmp_path):
    sheet = write_xlsx(tmp_path / "sheet.xlsx", [CASME3_HEADER + ["Onset"],
                                                 ["spNO.1", "a", 10, 12, 20, "", "", "happy", 99]])
    proc = mepkg(*_labels_case(tmp_path, lambda _: sheet, dataset="casme3"))
    assert_one_line_error(proc, "labels", "sheet.xlsx", "row 1", "onset appear twice")


def _truncated_xlsx(tmp: Path) -> Path:
    full = casme3_sheet(tmp / "full.xlsx", [["spNO.1", "a", 10, 12, 20, "", "", "happy"]])
    return write(tmp / "sheet.xlsx", full.read_bytes()[:300])


SHEET_CASES = {
    "truncated": (_truncated_xlsx, ["sheet.xlsx", "not a readable .xlsx"]),
    "zero-byte": (lambda t: write(t / "sheet.xlsx", b""), ["sheet.xlsx", "empty (0 bytes)"]),
    "renamed-csv": (lambda t: write(t / "sheet.xlsx", GENERIC_HEADER + GOOD_ROW),
                    ["sheet.xlsx", "a CSV renamed .xlsx?"]),
    "a-folder": (lambda t: (t / "sheet.xlsx").mkdir() or t / "sheet.xlsx",
                 ["sheet.xlsx is a folder"]),
    "missing": (lambda t: t / "nope.xlsx", ["nope.xlsx"]),
    "no-header": (lambda t: write_xlsx(t / "sheet.xlsx", [["a", "b"], [1, 2]]),
                  ["sheet.xlsx", "no header row"]),
    "every-row-invalid": (lambda t: casme3_sheet(t / "sheet.xlsx",
                                                 [["spNO.1", "a", 30, 20, 40, "", "", "happy"]]),
                          ["sheet.xlsx", "no valid event remains"]),
    "negative-frame": (lambda t: casme3_sheet(t / "sheet.xlsx",
                                              [["spNO.1", "a", 10, 12, 20, "", "", "happy"],
                                               ["spNO.1", "b", -4, 12, 20, "", "", "happy"]]),
                       ["sheet.xlsx row 3", "negative onset -4"]),
    "empty-subject": (lambda t: casme3_sheet(t / "sheet.xlsx",
                                             [["", "a", 10, 12, 20, "", "", "happy"]]),
                      ["sheet.xlsx row 2", "empty subject"]),
}


@pytest.mark.parametrize("case", list(SHEET_CASES))
def test_labels_casme3_sheet(tmp_path, case):
    make, expected = SHEET_CASES[case]
    proc = mepkg(*_labels_case(tmp_path, make, dataset="casme3"))
    assert_one_line_error(proc, "labels", *expected)
    assert_nothing_written(tmp_path / "out.csv")


def test_labels_sammlv_needs_both_sheets(tmp_path):
    sheet = casme3_sheet(tmp_path / "one.xlsx", [["spNO.1", "a", 10, 12, 20, "", "", "happy"]])
    proc = mepkg("labels", "--dataset", "sammlv", "--labels", sheet, "--out", tmp_path / "o.csv")
    assert_one_line_error(proc, "labels", "SAMM-LV needs two label files", "one.xlsx")


@pytest.mark.parametrize("option, expected", [
    (["--emotion-map", "angry"], "expects RAW=CLASS, got 'angry'"),
    (["--emotion-map", "angry=furious"], "'angry' -> 'furious'"),
])
def test_labels_bad_emotion_map(tmp_path, option, expected):
    csv = write(tmp_path / "labels.csv", GENERIC_HEADER + GOOD_ROW)
    proc = mepkg(*_labels_case(tmp_path, lambda _: csv), *option)
    assert_one_line_error(proc, "labels", expected)
    assert_nothing_written(tmp_path / "out.csv")


def _read_only_dir() -> Path:
    """A folder this process cannot write in (root ignores permissions: use /sys)."""
    return Path("/sys") if Path("/sys").is_dir() else Path("/")


@pytest.mark.parametrize("where", ["a-folder", "read-only", "under-a-file"])
def test_labels_out_checked_before_reading(tmp_path, where):
    csv = write(tmp_path / "labels.csv", GENERIC_HEADER + GOOD_ROW)
    out = {"a-folder": tmp_path, "read-only": _read_only_dir() / "out.csv",
           "under-a-file": csv / "out.csv"}[where]
    if where == "read-only" and os.access(out.parent, os.W_OK) and out.parent != Path("/sys"):
        pytest.skip("no read-only folder here")
    proc = mepkg("labels", "--dataset", "generic", "--labels", csv, "--out", out)
    line = assert_one_line_error(proc, "labels", f"--out {out}")
    assert ".tmp" not in line


# ---------------------------------------------------------------- manifest
def test_manifest_root_missing(tmp_path):
    proc = mepkg("manifest", "--dataset", "casme3", "--root", tmp_path / "nope",
                 "--out", tmp_path / "out")
    assert_one_line_error(proc, "manifest", "nope")
    assert not (tmp_path / "out").exists()


def test_manifest_root_without_frames(tmp_path):
    casme3_sheet(tmp_path / "root" / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
                 [["spNO.1", "a", 10, 12, 20, "", "", "happy"]]) if (tmp_path / "root").mkdir() \
        is None else None
    proc = mepkg("manifest", "--dataset", "casme3", "--root", tmp_path / "root",
                 "--out", tmp_path / "out")
    assert_one_line_error(proc, "manifest", "no CAS(ME)^3 frame folders", "root")
    assert_nothing_written(tmp_path / "out" / "labels.csv", tmp_path / "out" / "manifest.csv")


def test_manifest_damaged_list_malformed(tmp_path):
    root = tmp_path / "root"
    frame_folder(root / "spNO.1" / "a" / "color")
    write(root / "error_info_damaged_image_partA.txt", "spNO.1 a\n")
    proc = mepkg("manifest", "--dataset", "casme3", "--root", root, "--out", tmp_path / "out")
    assert_one_line_error(proc, "manifest", "error_info_damaged_image_partA.txt line 1")


def test_manifest_damaged_list_not_utf8(tmp_path):
    root = tmp_path / "root"
    frame_folder(root / "spNO.1" / "a" / "color")
    write(root / "error_info_damaged_image_partA.txt", "spNO.1 a 1.jpg \xe9\n".encode("latin-1"))
    proc = mepkg("manifest", "--dataset", "casme3", "--root", root, "--out", tmp_path / "out")
    assert_one_line_error(proc, "manifest", "error_info_damaged_image_partA.txt", "not UTF-8")


def test_manifest_warns_about_a_label_past_the_last_frame(tmp_path):
    root = tmp_path / "root"
    frame_folder(root / "spNO.1" / "a" / "color", n=3)
    casme3_sheet(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
                 [["spNO.1", "a", 1, 2, 3, "", "", "happy"],
                  ["spNO.1", "a", 10, 12, 20, "", "", "happy"]])
    proc = mepkg("manifest", "--dataset", "casme3", "--root", root, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "last frame" in line]
    assert len(warning) == 1 and "JpgIndex_v2.xlsx row 3 (spNO.1 a)" in warning[0]
    assert "frame 2" in warning[0]


def test_manifest_generic_frame_folder_needs_folder_fps(tmp_path):
    root = tmp_path / "root"
    write(root / "labels.csv", GENERIC_HEADER + "s1,v1,1,2,3,micro,happy\n")
    folder = frame_folder(root / "videos" / "s1" / "v1")
    out = tmp_path / "out"
    proc = mepkg("manifest", "--dataset", "generic", "--root", root, "--out", out)
    assert_one_line_error(proc, "manifest", f"{folder}: a frame folder has no frame rate",
                          "--folder-fps")
    assert_nothing_written(out / "labels.csv", out / "manifest.csv")


def test_manifest_out_is_a_file(tmp_path):
    root = tmp_path / "root"
    frame_folder(root / "spNO.1" / "a" / "color")
    out = write(tmp_path / "out", "x")
    proc = mepkg("manifest", "--dataset", "casme3", "--root", root, "--out", out)
    assert_one_line_error(proc, "manifest", f"--out {out} is a file")


# ---------------------------------------------------------------- synth
@pytest.mark.parametrize("args, expected", [
    (["--size", "huge"], "argument --size: invalid choice: 'huge'"),
    (["--seed", "x"], "argument --seed: invalid int value: 'x'"),
])
def test_synth_bad_options(tmp_path, args, expected):
    proc = mepkg("synth", *args, "--out", tmp_path / "out")
    assert_one_line_error(proc, "synth", expected)
    assert "usage:" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_synth_out_is_a_file(tmp_path):
    out = write(tmp_path / "out", "x")
    assert_one_line_error(mepkg("synth", "--out", out), "synth", f"--out {out} is a file")


# ---------------------------------------------------------------- landmarks and features
@pytest.mark.parametrize("command", ["landmarks", "features"])
def test_frame_folder_needs_fps(tmp_path, command):
    folder = frame_folder(tmp_path / "spNO.1" / "a" / "color")
    proc = mepkg(command, folder, "--out", tmp_path / "out.h5")
    assert_one_line_error(proc, command, str(folder), "frame folder", "--fps")
    assert_nothing_written(tmp_path / "out.h5")


@pytest.mark.parametrize("command", ["landmarks", "features"])
@pytest.mark.parametrize("args, expected", [
    (["--fps", "0"], "argument --fps: '0' must be > 0"),
    (["--fps", "abc"], "argument --fps: 'abc' is not a number"),
    (["--k", "0"], "argument --k: '0' must be > 0"),
    (["--frame-skip", "-1"], "argument --frame-skip"),
])
def test_landmarks_features_bad_numbers(tmp_path, command, args, expected):
    folder = frame_folder(tmp_path / "frames")
    proc = mepkg(command, folder, "--out", tmp_path / "out.h5", *args)
    assert_one_line_error(proc, command, expected)
    assert_nothing_written(tmp_path / "out.h5")


@pytest.mark.parametrize("command", ["landmarks", "features"])
def test_input_missing(tmp_path, command):
    proc = mepkg(command, tmp_path / "nope.mp4", "--out", tmp_path / "out.h5")
    assert_one_line_error(proc, command, "nope.mp4")


def test_landmarks_video_of_random_bytes(tmp_path, cli):
    video = write(tmp_path / "clip.mp4", os.urandom(2000))
    proc = cli("landmarks", video, "--out", tmp_path / "out.h5")
    assert_one_line_error(proc, "landmarks", "clip.mp4", "OpenCV cannot open")
    assert_nothing_written(tmp_path / "out.h5")


def test_landmarks_empty_frame_folder(tmp_path, cli):
    (tmp_path / "frames").mkdir()
    proc = cli("landmarks", tmp_path / "frames", "--fps", "30", "--out", tmp_path / "out.h5")
    assert_one_line_error(proc, "landmarks", "frames", "no numbered frame images")
    assert_nothing_written(tmp_path / "out.h5")


def test_features_landmarks_file_of_random_bytes(tmp_path):
    folder = frame_folder(tmp_path / "frames")
    bad = write(tmp_path / "lm.h5", os.urandom(500))
    proc = mepkg("features", folder, "--fps", "30", "--landmarks", bad, "--out",
                 tmp_path / "out.h5")
    assert_one_line_error(proc, "features", "lm.h5")
    assert_nothing_written(tmp_path / "out.h5")


@pytest.mark.parametrize("option", ["--out", "--debug-figure"])
def test_features_outputs_checked_first(tmp_path, option):
    folder = frame_folder(tmp_path / "frames")
    args = {"--out": tmp_path / "out.h5", "--debug-figure": tmp_path / "fig.png"}
    args[option] = tmp_path   # a folder where a file is expected
    proc = mepkg("features", folder, "--fps", "30", *[x for kv in args.items() for x in kv])
    assert_one_line_error(proc, "features", f"{option} {tmp_path} is a folder")


@pytest.mark.parametrize("path, subject, expected", [
    ("data/spNO.1/a/color", None, ("spNO.1", "a", "spNO.1_a")),      # CAS(ME)^3 frame folder
    ("data/SAMM_longvideos/006_1", None, ("006", "006_1", "006_1")),
    ("data/videos/s1/clip.mp4", None, ("s1", "clip", "s1_clip")),    # generic layout
    ("clip.mp4", None, ("", "clip", "clip")),
    ("clip.mp4", "s9", ("s9", "clip", "s9_clip")),                   # --subject wins
])
def test_video_ids_come_from_the_dataset_layout(tmp_path, path, subject, expected):
    from mepkg.datasets import identify_video

    target = tmp_path / path
    if target.suffix == ".mp4":
        write(target, b"")
    else:
        target.mkdir(parents=True)
    assert identify_video(target, subject) == expected


# ---------------------------------------------------------------- train-fold
@pytest.mark.parametrize("args, expected", [
    (["--device", "gpu0"], "argument --device: 'gpu0' is not a device"),
    (["--epochs", "0"], "argument --epochs: '0' must be > 0"),
    (["--threads", "two"], "argument --threads: 'two' is not a number"),
])
def test_train_fold_bad_options(tmp_path, args, expected):
    proc = mepkg("train-fold", "--features", tmp_path, "--labels", tmp_path / "l.csv",
                 "--subject", "s1", "--out", tmp_path / "out", *args)
    assert_one_line_error(proc, "train-fold", expected)
    assert not (tmp_path / "out").exists()


def test_train_fold_out_is_a_file(tmp_path):
    out = write(tmp_path / "out", "x")
    proc = mepkg("train-fold", "--features", tmp_path, "--labels", tmp_path / "l.csv",
                 "--subject", "s1", "--out", out)
    assert_one_line_error(proc, "train-fold", f"--out {out} is a file")


# ---------------------------------------------------------------- model files
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A raw model file, one without a frame rate, and a release-like state dict."""
    import torch

    from mepkg.model import save_model_file

    tmp = tmp_path_factory.mktemp("models")
    net, raw = small_model_file(tmp)
    no_fps = save_model_file(tmp / "no_fps.pt", net, k=10, frame_skip=1, fps=None)
    release = tmp / "release.pkl"
    torch.save({"module.Stem.0.weight": torch.zeros(16, 36, 3)}, release)
    return {"raw": raw, "no_fps": no_fps, "release": release}


def test_convert_checkpoint_random_bytes(tmp_path, cli):
    bad = write(tmp_path / "release.pkl", os.urandom(1000))
    proc = cli("convert-checkpoint", bad, tmp_path / "m.pt", "--k", "30", "--frame-skip", "7",
                 "--fps", "200")
    line = assert_one_line_error(proc, "convert-checkpoint", "release.pkl",
                                 "not a readable PyTorch checkpoint")
    assert "weights_only" not in line
    assert_nothing_written(tmp_path / "m.pt")


def test_convert_checkpoint_needs_k_frame_skip_fps(tmp_path, models, cli):
    proc = cli("convert-checkpoint", models["release"], tmp_path / "m.pt", "--k", "30")
    assert_one_line_error(proc, "convert-checkpoint", "release.pkl",
                          "records no --frame-skip, --fps")
    assert_nothing_written(tmp_path / "m.pt")


@pytest.mark.parametrize("which", ["input-folder", "output-folder"])
def test_convert_checkpoint_folders(tmp_path, models, which, cli):
    src = tmp_path if which == "input-folder" else models["release"]
    dst = tmp_path / "m.pt" if which == "input-folder" else tmp_path
    proc = cli("convert-checkpoint", src, dst, "--k", "30", "--frame-skip", "7", "--fps", "200")
    assert_one_line_error(proc, "convert-checkpoint", f"{tmp_path}", "is a folder")


def test_package_model_random_model_file(tmp_path, cli):
    bad = write(tmp_path / "model.pt", os.urandom(1000))
    labels = write(tmp_path / "labels.csv", GENERIC_HEADER + GOOD_ROW)
    proc = cli("package-model", "--model", bad, "--labels", labels, "--out", tmp_path / "p.pt")
    line = assert_one_line_error(proc, "package-model", "model.pt",
                                 "not a readable mepkg model file")
    assert "weights_only" not in line
    assert_nothing_written(tmp_path / "p.pt")


def test_package_model_labels_lack_columns(tmp_path, models, cli):
    labels = write(tmp_path / "labels.csv", "subject,video\ns1,v1\n")
    proc = cli("package-model", "--model", models["raw"], "--labels", labels,
                 "--out", tmp_path / "p.pt")
    assert_one_line_error(proc, "package-model", "labels.csv", "missing column(s) onset")
    assert_nothing_written(tmp_path / "p.pt")


PRIORS_CASES = {
    "not-a-number": ("p: abc\n", ["priors.yaml", "prior p: 'abc' is not a float"]),
    "yaml-syntax": ("p: [0.5\n", ["priors.yaml", "not valid YAML"]),
    "unknown-key": ("q: 0.5\n", ["priors.yaml", "unknown decode prior(s) ['q']"]),
    "out-of-range": ("p: 3\n", ["decode prior p=3"]),
    "a-list": ("- 1\n- 2\n", ["priors.yaml", "mapping"]),
}


@pytest.mark.parametrize("case", list(PRIORS_CASES))
def test_package_model_bad_priors(tmp_path, models, case, cli):
    body, expected = PRIORS_CASES[case]
    priors = write(tmp_path / "priors.yaml", body)
    labels = write(tmp_path / "labels.csv", GENERIC_HEADER + GOOD_ROW)
    proc = cli("package-model", "--model", models["raw"], "--labels", labels, "--priors",
                 priors, "--out", tmp_path / "p.pt")
    assert_one_line_error(proc, "package-model", *expected)
    assert_nothing_written(tmp_path / "p.pt")


# ---------------------------------------------------------------- decode
@pytest.mark.parametrize("case", ["random-bytes", "missing", "bad-priors", "out-folder"])
def test_decode_bad_inputs(tmp_path, case, cli):
    scores = write(tmp_path / "scores.h5", os.urandom(300))
    args = ["decode", "--scores", scores, "--out", tmp_path / "i.csv"]
    expected = ["scores.h5"]
    if case == "missing":
        args[2], expected = tmp_path / "nope.h5", ["nope.h5"]
    elif case == "bad-priors":
        args += ["--priors", write(tmp_path / "priors.yaml", "p: abc\n")]
        expected = ["priors.yaml", "prior p"]
    elif case == "out-folder":
        args[-1], expected = tmp_path, [f"--out {tmp_path} is a folder"]
    assert_one_line_error(cli(*args), "decode", *expected)
    assert_nothing_written(tmp_path / "i.csv")


# ---------------------------------------------------------------- evaluate
GT = PRED_HEADER + "001,v1,10,30,negative\n001,v2,50,80,positive\n"
EVALUATE_CASES = {
    # id: (pred body, gt body, extra args, expected)
    "foreign-emotions": (PRED_HEADER + "001,v1,10,30,angry\n001,v2,50,80,disgust\n", GT, [],
                         ["pred.csv", "angry, disgust", "occur neither"]),
    "emotions-foo-bar": (PRED_HEADER + "001,v1,10,30,negative\n", GT,
                         ["--emotions", "foo,bar"], ["gt.csv", "foo, bar", "choose --emotions"]),
    "zero-padding": (PRED_HEADER + "1,v1,10,30,negative\n", GT, [],
                     ["pred.csv", "zero-padding", "'1' vs '001'"]),
    "gt-negative-onset": (PRED_HEADER + "001,v1,10,30,negative\n",
                          PRED_HEADER + "001,v1,-3,30,negative\n", [],
                          ["gt.csv", "data row 1", "negative onset -3"]),
    "gt-reversed": (PRED_HEADER + "001,v1,10,30,negative\n",
                    PRED_HEADER + "001,v1,40,30,negative\n", [],
                    ["gt.csv", "data row 1", "reversed interval"]),
    "pred-missing-column": ("subject,video,onset,emotion\n001,v1,10,negative\n", GT, [],
                            ["pred.csv", "lack column(s) ['offset']"]),
    "pred-empty": ("", GT, [], ["pred.csv", "empty"]),
    "pred-not-utf8": (PRED_HEADER.encode() + b"001,v1,10,30,n\xe9gative\n", GT, [],
                      ["pred.csv", "not UTF-8"]),
    "pred-half-frame": (PRED_HEADER + "001,v1,10,30.5,negative\n", GT, [],
                        ["pred.csv", "data row 1", "30.5"]),
    "no-common-video": (PRED_HEADER + "001,v9,10,30,negative\n", GT, [],
                        ["pred.csv", "no prediction names a (subject, video)"]),
    "emotions-empty": (PRED_HEADER + "001,v1,10,30,negative\n", GT, ["--emotions", ","],
                       ["--emotions ','", "names no emotion"]),
}


@pytest.mark.parametrize("case", list(EVALUATE_CASES))
def test_evaluate_bad_inputs(tmp_path, case):
    pred_body, gt_body, extra, expected = EVALUATE_CASES[case]
    pred, gt = write(tmp_path / "pred.csv", pred_body), write(tmp_path / "gt.csv", gt_body)
    proc = mepkg("evaluate", "--pred", pred, "--gt", gt, "--out", tmp_path / "m.json", *extra)
    assert_one_line_error(proc, "evaluate", *expected)
    assert_nothing_written(tmp_path / "m.json")


def test_evaluate_warns_once_about_a_foreign_emotion_and_scores(tmp_path):
    pred = write(tmp_path / "pred.csv", PRED_HEADER + "001,v1,10,30,negative\n"
                                                      "001,v2,50,80,angry\n")
    gt = write(tmp_path / "gt.csv", GT)
    proc = mepkg("evaluate", "--pred", pred, "--gt", gt, "--out", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "angry" in line]
    assert len(warnings) == 1 and "never count as recognised" in warnings[0]
    assert (tmp_path / "m.json").is_file()


@needs_fixture("megc_strs", "pred.csv")
@pytest.mark.parametrize("emotions, strs", [
    ("disgust,happiness,others,repression,surprise", 0.386230),
    ("negative,positive,surprise", 0.205146),
])
def test_evaluate_megc_example_scores_as_the_evaluator(tmp_path, emotions, strs):
    """The evaluator's own example (an onset of -3 in its predictions): its published STRS."""
    import json

    folder = fixture_path("megc_strs")
    proc = mepkg("evaluate", "--mode", "official", "--pred", folder / "pred.csv",
                 "--gt", folder / "gt.csv", "--emotions", emotions, "--out", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    assert "negative onset" in proc.stderr and "scored as given" in proc.stderr
    assert json.loads((tmp_path / "m.json").read_text())["strs"] == pytest.approx(strs, abs=5e-7)


# ---------------------------------------------------------------- spot
def test_spot_frame_folder_needs_fps(tmp_path, models, cli):
    folder = frame_folder(tmp_path / "frames")
    proc = cli("spot", folder, "--model", models["raw"], "--out", tmp_path / "out")
    assert_one_line_error(proc, "spot", "frames", "--fps")
    assert not (tmp_path / "out").exists()


def test_spot_random_model_file(tmp_path, cli):
    folder = frame_folder(tmp_path / "frames")
    model = write(tmp_path / "model.pt", os.urandom(1000))
    proc = cli("spot", folder, "--fps", "30", "--model", model, "--out", tmp_path / "out")
    line = assert_one_line_error(proc, "spot", "model.pt", "not a readable mepkg model file")
    assert "weights_only" not in line


def test_spot_names_what_the_model_lacks(tmp_path, models, cli):
    folder = frame_folder(tmp_path / "frames")
    proc = cli("spot", folder, "--fps", "30", "--model", models["no_fps"],
                 "--out", tmp_path / "out")
    assert_one_line_error(proc, "spot", "no_fps.pt", "records no fps", "--fps")
    assert not (tmp_path / "out" / "intervals.csv").exists()


def test_spot_unpackaged_model(tmp_path, models, cli):
    folder = frame_folder(tmp_path / "frames")
    proc = cli("spot", folder, "--fps", "30", "--model", models["raw"],
                 "--out", tmp_path / "out")
    assert_one_line_error(proc, "spot", "raw.pt", "mepkg package-model")


@pytest.mark.parametrize("args, expected", [
    (["--device", "gpu0"], "argument --device: 'gpu0' is not a device"),
    (["--fps", "-30"], "argument --fps: '-30' must be > 0"),
])
def test_spot_bad_options(tmp_path, models, args, expected, cli):
    proc = cli("spot", tmp_path, "--model", models["raw"], "--out", tmp_path / "out", *args)
    assert_one_line_error(proc, "spot", expected)


# ---------------------------------------------------------------- interruption, bugs
def test_ctrl_c_prints_interrupted_and_exits_130(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "mepkg", "synth", "--size", "standard",
                             "--out", str(tmp_path / "out")], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as in a terminal: a runner started in the background (CI) passes
                            # SIGINT on ignored, and Python then never raises KeyboardInterrupt
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stderr.readline()      # the first log line: rendering has started
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = first + err
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "mepkg synth: interrupted"


def test_unexpected_error_says_how_to_see_the_traceback(monkeypatch, capsys):
    from mepkg import cli

    def boom(args):
        raise RuntimeError("something nobody anticipated")

    monkeypatch.setattr(cli, "_cmd_synth", boom)
    assert cli.main(["synth", "--out", "unused"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip() == ("mepkg synth: internal error: unexpected RuntimeError: something "
                           "nobody anticipated; run `mepkg -v synth ...` to see the traceback "
                           "and report it")
    with pytest.raises(RuntimeError):
        cli.main(["-v", "synth", "--out", "unused"])


def test_a_library_value_error_is_an_internal_error(monkeypatch, capsys):
    """A ValueError from Python or a library (``int(nan)``) names no input: it is reported as
    an internal error (exit 1); mepkg's own checks (InputError, its ``raise ValueError``) as
    bad input (exit 2)."""
    from mepkg import cli
    from mepkg.inputs import InputError

    def library(args):
        int(float("nan"))

    def pandas_error(args):
        import pandas as pd

        pd.Series([float("nan")]).astype(int)

    def check(args):
        raise InputError("x.csv line 3: onset 'abc' is not a whole frame number")

    for func, code, start in [(library, 1, "mepkg synth: internal error: unexpected ValueError"),
                              (pandas_error, 1, "mepkg synth: internal error: unexpected"),
                              (check, 2, "mepkg synth: error: x.csv line 3")]:
        monkeypatch.setattr(cli, "_cmd_synth", func)
        assert cli.main(["synth", "--out", "unused"]) == code
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.startswith(start), err


# ---------------------------------------------------------------- the workflow's configuration
def _snakemake_dry_run(tmp_path, config: str):

    return snakemake(copy_workflow(tmp_path / "wf"), "-n", "--config", config, check=False,
                     timeout=300)


def _casme3_root(tmp_path, frames: bool, sheet_bytes: bytes | None = None) -> Path:
    root = tmp_path / "casme3"
    sheet = root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
    root.mkdir()
    casme3_sheet(sheet, [["spNO.1", "a", 10, 12, 20, "", "", "happy"],
                         ["spNO.2", "b", 10, 12, 20, "", "", "surprise"]])
    if sheet_bytes is not None:
        sheet.write_bytes(sheet_bytes)
    if frames:
        frame_folder(root / "spNO.1" / "a" / "color")
    return root


@pytest.mark.parametrize("case, expected", [
    ("no-frames", "no CAS(ME)^3 frame folders"),
    ("video-missing", "video spNO.2 b is labelled but not under"),
    ("corrupt-sheet", "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx: label sheet is empty"),
])
def test_workflow_plan_fails_early(tmp_path, case, expected):
    root = _casme3_root(tmp_path, frames=case != "no-frames",
                        sheet_bytes=b"" if case == "corrupt-sheet" else None)
    proc = _snakemake_dry_run(tmp_path, f"dataset={{name: casme3, data_root: {root}}}")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert expected in out, out[-3000:]
    assert "Job stats" not in out


def _generic_root(tmp_path) -> Path:
    """A generic root whose one labelled video is a frame folder (no frame rate on disk)."""
    root = tmp_path / "generic"
    write(root / "labels.csv", GENERIC_HEADER + "s1,v1,2,3,4,micro,happy\n")
    frame_folder(root / "videos" / "s1" / "v1", n=210)   # one window at frame_skip 7: 204
    return root


def test_workflow_generic_frame_folder_needs_folder_fps(tmp_path):
    """Not a guessed rate: planning stops on the folder, naming dataset.folder_fps."""
    root = _generic_root(tmp_path)
    proc = _snakemake_dry_run(tmp_path, f"dataset={{name: generic, data_root: {root}}}")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    line = f"{root / 'videos' / 's1' / 'v1'}: a frame folder has no frame rate; set " \
           f"dataset.folder_fps"
    assert line in out, out[-3000:]
    assert "Job stats" not in out


@pytest.mark.parametrize("form", ["shorthand", "nested"])
def test_workflow_generic_folder_fps_reaches_the_manifest(tmp_path, form):
    """dataset.folder_fps plans the run and is the manifest's fps (rule build_manifest)."""
    import pandas as pd

    root = _generic_root(tmp_path)
    config = {"shorthand": ["dataset=generic", f"data_root={root}", "folder_fps=200"],
              "nested": [f"dataset={{name: generic, data_root: {root}, folder_fps: 200}}"]}
    work = copy_workflow(tmp_path / "wf")
    snakemake(work, "--cores", "1", "results/generic/manifest.csv", "--config", *config[form],
              timeout=300)
    manifest = pd.read_csv(work / "results" / "generic" / "manifest.csv")
    assert manifest[["video_id", "fps", "n_frames"]].values.tolist() == [["s1_v1", 200.0, 210]]


def test_workflow_bad_config_value(tmp_path):
    proc = _snakemake_dry_run(tmp_path, "features={frame_skip: 0}")
    assert proc.returncode != 0
    assert "bad value for 'features.frame_skip'" in proc.stdout + proc.stderr


def test_workflow_warns_when_the_sampled_rate_is_far_from_the_protocols(tmp_path):
    """30 fps frames with SAMM-LV's frame_skip 7 sample 4.3 frames/s, not ~30: one warning
    naming the rates and the setting; frame_skip 1 plans without it."""

    root = _generic_root(tmp_path)
    work = copy_workflow(tmp_path / "wf")
    dataset = f"dataset={{name: generic, data_root: {root}, folder_fps: 30}}"
    outs = {}
    for frame_skip in (7, 1):
        proc = snakemake(work, "-n", "--config", dataset, f"features={{frame_skip: {frame_skip}}}",
                         timeout=300)
        outs[frame_skip] = proc.stdout + proc.stderr
    assert ("dataset generic: videos at 30 fps with features.frame_skip 7 are sampled at "
            "4.3 frames/s") in outs[7], outs[7][-3000:]
    assert "set features.frame_skip 1" in outs[7]
    assert "sampled at" not in outs[1]


# ---------------------------------------------------------------- frame rates and video files
def video_file(path: Path, n: int, fps: float = 30.0, size=(64, 48)) -> Path:
    """An MJPEG .avi (or mp4v .mp4) of ``n`` random frames at ``fps``."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = "mp4v" if path.suffix == ".mp4" else "MJPG"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    rng = np.random.default_rng(0)
    for _ in range(n):
        writer.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def rate_zero_avi(path: Path, n: int = 40) -> Path:
    """An AVI whose headers record no rate (dwRate 0, 0 us per frame): OpenCV reports 25."""
    data = bytearray(video_file(path, n).read_bytes())
    avih, strh = data.find(b"avih"), data.find(b"strh")
    data[avih + 8:avih + 12] = bytes(4)          # dwMicroSecPerFrame
    data[strh + 8 + 24:strh + 8 + 28] = bytes(4)  # dwRate
    path.write_bytes(bytes(data))
    return path


def raw_mjpeg(path: Path, n: int = 40) -> Path:
    """A raw MJPEG stream (concatenated JPEGs, no container): no rate, no frame count."""
    import cv2

    with open(path, "wb") as f:
        for i in range(n):
            f.write(cv2.imencode(".jpg", np.full((48, 64, 3), 5 * i, np.uint8))[1].tobytes())
    return path


def vfr_mp4(path: Path) -> Path:
    """70 frames: 10 at 10 fps, then 60 at 60 fps (OpenCV reports their average, 35 fps)."""
    import shutil

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (needed to make a variable-frame-rate video)")
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=64x48:rate=60", "-frames:v", "70", "-vf",
                    r"settb=1/600,setpts='if(lt(N\,10)\,N*60\,600+(N-10)*10)'",
                    "-fps_mode", "passthrough", "-enc_time_base", "1/600", "-c:v", "mpeg4",
                    str(path)], check=True)
    return path


@pytest.mark.parametrize("make, expected", [
    (rate_zero_avi, "records no frame rate (OpenCV would assume 25 fps)"),
    (raw_mjpeg, "records no frame rate"),
])
def test_a_video_without_a_rate_is_refused_not_read_at_25(tmp_path, make, expected, cli):
    video = make(tmp_path / ("clip.avi" if make is rate_zero_avi else "clip.mjpeg"))
    proc = cli("landmarks", video, "--out", tmp_path / "lm.h5")
    assert_one_line_error(proc, "landmarks", str(video), expected, "--fps")
    assert_nothing_written(tmp_path / "lm.h5")


def test_a_given_rate_reads_a_rate_less_video(tmp_path):
    from mepkg.datasets.frames import open_frames, video_properties

    video = rate_zero_avi(tmp_path / "clip.avi")
    assert video_properties(video) == (40, 0.0)
    source = open_frames(video, frame_skip=1, fps=30)
    assert source.fps == 30.0 and len(list(source)) == 40


def test_a_variable_frame_rate_video_is_refused(tmp_path, cli):
    """Read at its average 35 fps, frame 19 would be at 0.54 s; it is at 1.15 s."""
    video = vfr_mp4(tmp_path / "vfr.mp4")
    proc = cli("landmarks", video, "--out", tmp_path / "lm.h5", "--k", "4", "--frame-skip", "1")
    assert_one_line_error(proc, "landmarks", "vfr.mp4", "variable frame rate", "frame 1 ",
                          "-fps_mode cfr")
    assert_nothing_written(tmp_path / "lm.h5")


@pytest.mark.parametrize("suffix", [".avi", ".mp4", ".mkv"])
def test_constant_rate_videos_pass_the_timestamp_check(tmp_path, suffix):
    from mepkg.datasets.frames import open_frames

    video = video_file(tmp_path / f"clip{suffix}", 90, fps=29.97)
    source = open_frames(video, frame_skip=7)
    assert [i for i, _ in source] == list(range(0, 90, 7)) and source.n_missing == 0


@pytest.mark.parametrize("fps", [0.5, 2000.0])
def test_an_unusual_rate_is_accepted_with_a_warning_naming_the_video(tmp_path, fps, caplog):
    import logging

    from mepkg.datasets.frames import open_frames

    video = video_file(tmp_path / "clip.mp4", 5, fps=fps)
    with caplog.at_level(logging.WARNING):
        source = open_frames(video)
    assert source.fps == fps
    assert f"{video}: a frame rate of {fps:g} fps is unusual" in caplog.text


def test_generic_root_rate_less_video_needs_folder_fps(tmp_path):
    from mepkg.datasets import plan_dataset, scan_manifest

    write(tmp_path / "labels.csv", GENERIC_HEADER + "s1,clip,2,3,4,micro,happy\n")
    video = rate_zero_avi(tmp_path / "videos" / "s1" / "clip.avi")
    with pytest.raises(ValueError) as error:
        plan_dataset("generic", tmp_path)
    assert str(error.value).startswith(f"{video}: the video file records no frame rate")
    assert "set dataset.folder_fps" in str(error.value)
    assert scan_manifest("generic", tmp_path, folder_fps=30).fps.tolist() == [30.0]


def test_manifest_rate_less_video_names_folder_fps(tmp_path):
    write(tmp_path / "labels.csv", GENERIC_HEADER + "s1,clip,2,3,4,micro,happy\n")
    rate_zero_avi(tmp_path / "videos" / "s1" / "clip.avi")
    proc = mepkg("manifest", "--dataset", "generic", "--root", tmp_path, "--out", tmp_path / "o")
    assert_one_line_error(proc, "manifest", "clip.avi", "records no frame rate", "--folder-fps")


@pytest.mark.parametrize("case, expected", [
    ("zero-frames", "video has no frames"),
    ("one-frame", "1 frame(s), too short for one window of 30 sampled frames at frame_skip 7: "
                  "it needs at least 204 frames (6.80 s at 30 fps)"),
    ("short", "100 frame(s), too short for one window"),
    ("not-a-video", "OpenCV cannot open this video file"),
    ("truncated", "the stream ends at frame"),
])
@pytest.mark.parametrize("command", ["landmarks", "features"])
def test_unusable_video_files(tmp_path, case, expected, command, cli):
    video = tmp_path / "clip.avi"
    if case == "not-a-video":
        write(video, "subject,video\n" * 50)
    elif case == "truncated":
        data = video_file(video, 300).read_bytes()
        video.write_bytes(data[:len(data) // 2])
    else:
        video_file(video, {"zero-frames": 0, "one-frame": 1, "short": 100}[case])
    # truncated: every frame is a reference frame (k 2), so that reading reaches the end
    small = ["--k", "2", "--frame-skip", "1"] if case == "truncated" else []
    proc = cli(command, video, "--out", tmp_path / "out.h5", *small)
    assert_one_line_error(proc, command, str(video), expected)
    assert_nothing_written(tmp_path / "out.h5")


def test_frame_folder_mixing_frame_sizes_is_refused(tmp_path):
    import cv2

    from mepkg.datasets.frames import open_frames
    from mepkg.inputs import InputError

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        size = (360, 640) if i < 2 else (180, 320)
        cv2.imwrite(str(folder / f"{i}.jpg"), np.zeros((*size, 3), np.uint8))
    with pytest.raises(InputError, match=r"frame 2.jpg is 320x180, 0.jpg is 640x360"):
        list(open_frames(folder, fps=30))


def _track(n_frames: int, k: int = 30, frame_skip: int = 7, **attrs):
    from mepkg.h5io import LandmarkTrack
    from mepkg.targets import n_windows

    w = n_windows(-(-n_frames // frame_skip), k)
    return LandmarkTrack(ref_frame=np.arange(w, dtype=np.int64) * (k // 2) * frame_skip,
                         face_box=np.zeros((w, 4), np.float32),
                         landmarks=np.zeros((w, 68, 2), np.float32),
                         detected=np.ones(w, bool),
                         attrs={"backend": "dlib", "backend_version": "x", "k": k,
                                "frame_skip": frame_skip, "n_frames": n_frames, "fps": 30.0,
                                "video": "other.avi", **attrs})


@pytest.mark.parametrize("case", ["other-length", "other-video-id"])
def test_features_refuse_landmarks_of_another_video(tmp_path, case, cli):
    from mepkg.h5io import write_landmarks

    video = video_file(tmp_path / "clip.avi", 420)
    n_frames = 430 if case == "other-length" else 420
    landmarks = write_landmarks(tmp_path / "lm.h5", _track(n_frames, video_id="other"))
    args = ["features", video, "--landmarks", landmarks, "--out", tmp_path / "f.h5"]
    if case == "other-length":
        args += ["--video-id", "other"]
        expected = ["clip.avi: 420 frames, but the landmarks were detected on a video of 430"]
    else:
        expected = ["lm.h5: landmarks of video other, not of clip"]
    assert_one_line_error(cli(*args), "features", *expected)
    assert_nothing_written(tmp_path / "f.h5")


# ---------------------------------------------------------------- the workflow's plan
def test_workflow_plans_no_job_for_a_video_too_short_for_a_window(tmp_path):
    """Two labelled videos, one of 8 frames: named at planning, no job; the other planned."""
    root = _generic_root(tmp_path)
    write(root / "labels.csv", GENERIC_HEADER + "s1,v1,2,3,4,micro,happy\n"
                                                "s2,short,2,3,4,micro,happy\n")
    frame_folder(root / "videos" / "s2" / "short", n=8)
    proc = _snakemake_dry_run(tmp_path, f"dataset={{name: generic, data_root: {root}, "
                                        f"folder_fps: 200}}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert (f"1 video(s) too short for one window of features.k 30 sampled frames at "
            f"features.frame_skip 7 (at least 204 frames) get no job and are not scored: "
            f"{root / 'videos' / 's2' / 'short'} (8 frames)") in out
    assert "Landmarks of s1_v1" in out and "s2_short" not in out


def test_sampled_rate_warning_names_every_rate_far_from_the_protocols():
    from mepkg.manifest import sampled_rate_warning

    line = sampled_rate_warning([24, 30, 30, 1000], 7, "generic")
    for part in ("24 fps -> 3.4 frames/s (frame_skip 1", "30 fps -> 4.3 frames/s",
                 "1000 fps -> 142.9 frames/s (frame_skip 33"):
        assert part in line, line
    assert sampled_rate_warning([24, 30], 1, "generic") is None


def test_workflow_rejects_a_nan_setting(tmp_path):
    proc = _snakemake_dry_run(tmp_path, "decode={p: .nan}")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "config: bad value for 'decode.p': nan is not a finite number" in out, out[-2000:]


def test_check_finite_settings_names_the_key():
    from mepkg.inputs import InputError, check_finite_settings

    check_finite_settings({"decode": {"p": 0.5}, "evaluate": {"sweep_p": [0.3, 0.4]}})
    with pytest.raises(InputError, match=r"'evaluate.sweep_p\[1\]': inf"):
        check_finite_settings({"evaluate": {"sweep_p": [0.3, float("inf")]}})


def test_workflow_casme3_root_without_its_sheet_names_label_files(tmp_path):
    root = tmp_path / "casme3"
    frame_folder(root / "spNO.1" / "a" / "color")
    proc = _snakemake_dry_run(tmp_path, f"dataset={{name: casme3, data_root: {root}}}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (f"dataset.data_root {root}: no label sheet cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx "
            f"in it or below; set dataset.label_files") in out, out[-2000:]
    assert "--labels" not in out


# ---------------------------------------------------------------- scoring and decoding
def scores_file(path: Path, video_id: str = "s1_v1") -> Path:
    from mepkg.h5io import VideoScores, write_scores

    n = 200
    spot = np.zeros(n, np.float32)
    spot[50:60] = 0.9
    logits = np.zeros((n, 5), np.float32)
    logits[:, 1] = 1.0
    return write_scores(path, [VideoScores(video_id=video_id, subject="s1", video="v1",
                                           spot=spot, logits=logits, frame_skip=1, k=10,
                                           fps=30.0, n_frames=n)], fold="s1")


def test_decode_refuses_the_same_video_twice(tmp_path, cli):
    scores = scores_file(tmp_path / "scores.h5")
    priors = write(tmp_path / "priors.yaml", "k_prime: 3\n")
    proc = cli("decode", "--scores", scores, scores, "--priors", priors,
               "--out", tmp_path / "i.csv")
    assert_one_line_error(proc, "decode", "scores.h5: video s1_v1 is also in",
                          "given twice")
    assert_nothing_written(tmp_path / "i.csv")
    proc = cli("decode", "--scores", scores, "--priors", priors, "--out", tmp_path / "i.csv")
    assert proc.returncode == 0, proc.stderr


def test_decode_refuses_megc_out_equal_to_out(tmp_path):
    """The check of run_decode itself (the CLI also refuses it before any work)."""
    from mepkg.decode import run_decode
    from mepkg.inputs import InputError

    scores = scores_file(tmp_path / "scores.h5")
    with pytest.raises(InputError, match="is the intervals file --out"):
        run_decode([scores], tmp_path / "i.csv", megc_out=tmp_path / "." / "i.csv")
    assert_nothing_written(tmp_path / "i.csv")


@pytest.mark.parametrize("body, expected", [
    ("subject,video,onset,offset,type\ns1,v1,10,nan,micro\n", ["labels.csv line 2", "'nan'"]),
    ("subject,video,onset,offset,type\ns1,v1,10,20,mega\n", ["labels.csv line 2", "'mega'"]),
    (PRED_HEADER + "s1,v1,10,20,negative\n", ["missing column(s) type"]),
])
def test_decode_labels_read_through_the_one_path(tmp_path, body, expected, cli):
    scores = scores_file(tmp_path / "scores.h5")
    labels = write(tmp_path / "labels.csv", body)
    proc = cli("decode", "--scores", scores, "--labels", labels, "--out", tmp_path / "i.csv")
    assert_one_line_error(proc, "decode", *expected)


def test_evaluate_empty_predictions_miss_every_ground_truth_event(tmp_path):
    import json

    pred = write(tmp_path / "pred.csv", PRED_HEADER)
    gt = write(tmp_path / "gt.csv", GT)
    proc = mepkg("evaluate", "--pred", pred, "--gt", gt, "--out", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    assert "no prediction rows; every ground-truth interval counts as missed" in proc.stderr
    spotting = json.loads((tmp_path / "m.json").read_text())["spotting"]
    assert (spotting["tp"], spotting["fp"], spotting["fn"]) == (0, 0, 2)


def test_evaluate_ground_truth_with_only_macro_rows(tmp_path):
    pred = write(tmp_path / "pred.csv", PRED_HEADER + "001,v1,10,30,negative\n")
    gt = write(tmp_path / "gt.csv", "subject,video,onset,offset,emotion,type\n"
                                    "001,v1,10,30,negative,macro\n")
    proc = mepkg("evaluate", "--pred", pred, "--gt", gt, "--out", tmp_path / "m.json")
    assert_one_line_error(proc, "evaluate", "gt.csv", "no micro-expression row")


def test_evaluate_strips_spaces_like_labels(tmp_path):
    """A leading space in a prediction's subject matches the ground truth's subject."""
    import json

    pred = write(tmp_path / "pred.csv", PRED_HEADER + " 001 , v1 ,10,30, negative\n")
    gt = write(tmp_path / "gt.csv", GT)
    proc = mepkg("evaluate", "--pred", pred, "--gt", gt, "--out", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "m.json").read_text())["spotting"]["tp"] == 1


@pytest.mark.parametrize("body, expected", [
    ("subject,video,onset,offset,onset,type\n", ["line 1", "'onset' appears twice"]),
    (PRED_HEADER + "001,v1,10,30,negative,extra\n", ["line 2", "6 field(s)"]),
    (PRED_HEADER + "001,v1,10,12345678901234567890123,negative\n", ["plausible frame number"]),
    (PRED_HEADER + "001,v1,10,inf,negative\n", ["data row 1", "offset inf"]),
    ("subject,video,onset,offset,emotion,vetoed\n001,v1,10,30,negative,maybe\n",
     ["data row 1", "vetoed 'maybe' is neither true nor false"]),
])
def test_evaluate_predictions_read_through_the_one_path(tmp_path, body, expected, cli):
    pred, gt = write(tmp_path / "pred.csv", body), write(tmp_path / "gt.csv", GT)
    proc = cli("evaluate", "--pred", pred, "--gt", gt, "--out", tmp_path / "m.json")
    assert_one_line_error(proc, "evaluate", "pred.csv", *expected)
    assert_nothing_written(tmp_path / "m.json")


# ---------------------------------------------------------------- model files
@pytest.mark.parametrize("body, expected", [
    (PRED_HEADER + "s1,v1,10,20,negative\n", ["labels.csv", "missing column(s) type"]),
    ("subject,video,onset,offset,type\ns1,v1,10,20,macro\n", ["no micro-expression row"]),
    ("a,b\n1,2\n", ["missing column(s) subject, video, onset, offset, type"]),
])
def test_package_model_refuses_unrelated_labels(tmp_path, models, body, expected, cli):
    labels = write(tmp_path / "labels.csv", body)
    proc = cli("package-model", "--model", models["raw"], "--labels", labels,
               "--out", tmp_path / "p.pt")
    assert_one_line_error(proc, "package-model", *expected)
    assert_nothing_written(tmp_path / "p.pt")


def _edited_model(models, tmp_path: Path, **changes) -> Path:
    import torch

    from mepkg.model import read_model_file

    payload = read_model_file(models["raw"])
    for key, value in changes.items():
        if key == "d_model":
            payload["model_config"] = {**payload["model_config"], "d_model": value}
        else:
            payload[key] = value
    torch.save(payload, tmp_path / "edited.pt")
    return tmp_path / "edited.pt"


@pytest.mark.parametrize("changes, expected", [
    ({"frame_skip": -7}, "records frame_skip -7, but a frame skip is >= 1"),
    ({"k": 7}, "records k 7, but a window length is even and >= 2"),
    ({"fps": float("nan")}, "records fps nan, not a frame rate"),
    ({"d_model": 32}, "its weights do not fit its model_config"),
])
def test_impossible_model_files_are_named(tmp_path, models, changes, expected, cli):
    model = _edited_model(models, tmp_path, **changes)
    labels = write(tmp_path / "labels.csv", "subject,video,onset,offset,type\ns1,v1,10,20,micro\n")
    command = "spot" if "d_model" in changes else "package-model"
    if command == "spot":
        args = ["spot", video_file(tmp_path / "clip.avi", 20), "--model", model,
                "--out", tmp_path / "out"]
    else:
        args = ["package-model", "--model", model, "--labels", labels, "--out", tmp_path / "p.pt"]
    line = assert_one_line_error(cli(*args), command, "edited.pt", expected)
    assert len(line) < 400
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def packaged(models, tmp_path_factory):
    from mepkg.package import package_model

    out = tmp_path_factory.mktemp("packaged") / "model.pt"
    return package_model(models["raw"], None, out, k_prime=3)


def test_spot_warns_about_a_sampled_rate_far_from_the_model(tmp_path, packaged, cli, caplog):
    """0.5 fps against a model trained at 30 fps: a warning naming the video and the rates
    (the random frames then show no face: one error line)."""
    video = video_file(tmp_path / "slow.mp4", 12, fps=0.5)
    proc = cli("spot", video, "--model", packaged, "--out", tmp_path / "out")
    assert (f"{video}: at 0.5 fps it is sampled at 0.5 frames/s (frame_skip 1), while the "
            f"model was trained at 30.0") in caplog.text
    assert_one_line_error(proc, "spot", "no face found")
    assert not (tmp_path / "out").exists()


def test_a_second_spot_into_the_same_out_fails_at_once(tmp_path, packaged, cli):
    from mepkg.atomic import locked_folder

    video = video_file(tmp_path / "clip.avi", 12)
    out = tmp_path / "out"
    with locked_folder(out):   # a first run holds the folder
        proc = cli("spot", video, "--model", packaged, "--out", out)
        assert_one_line_error(proc, "spot", f"--out {out}: another mepkg run is writing there")
    assert not out.exists()    # made by the first run, left empty: removed


# ---------------------------------------------------------------- training
def test_train_fold_labels_with_a_nan_onset(tmp_path, cli):
    features = tmp_path / "features"
    features.mkdir()
    labels = write(tmp_path / "labels.csv", "subject,video,onset,apex,offset,type,emotion\n"
                                            "s1,v1,10,12,20,micro,negative\n"
                                            "s2,v1,,12,20,micro,negative\n")
    proc = cli("train-fold", "--features", features, "--labels", labels, "--subject", "s1",
               "--out", tmp_path / "fold")
    assert_one_line_error(proc, "train-fold", "labels.csv line 3", "onset is empty")
    assert not (tmp_path / "fold").exists()


def test_train_fold_bad_epochs_says_whole_number(tmp_path):
    proc = mepkg("train-fold", "--features", tmp_path, "--labels", tmp_path / "l.csv",
                 "--subject", "s1", "--out", tmp_path / "fold", "--epochs", "1.5")
    assert_one_line_error(proc, "train-fold", "--epochs: '1.5' is not a whole number")


def _feature_set(subject: str, video: str, n_frames: int = 200, k: int = 10):
    from mepkg.h5io import FeatureSet

    w = n_frames // (k // 2) - 1
    return FeatureSet(features=np.zeros((w, 36, k), np.float32),
                      window_start=np.arange(w, dtype=np.int64) * (k // 2),
                      landmarks=np.zeros((w, 68, 2), np.float32),
                      crop_box=np.zeros((w, 4), np.int32), quality=np.zeros(w, np.uint8),
                      attrs={"video_id": f"{subject}_{video}" if subject else video,
                             "subject": subject, "video": video, "frame_skip": 1, "k": k,
                             "n_frames": n_frames, "fps": 30.0})


def test_train_warns_about_a_label_past_the_end_of_its_video(tmp_path, caplog):
    import logging

    from mepkg.inputs import read_labels_table
    from mepkg.train import _video_targets

    labels = read_labels_table(write(tmp_path / "labels.csv",
                                     "subject,video,onset,apex,offset,type,emotion\n"
                                     "s1,v1,10,12,20,micro,negative\n"
                                     "s1,v1,5000,5002,5010,micro,negative\n"))
    with caplog.at_level(logging.WARNING):
        spot, _ = _video_targets(_feature_set("s1", "v1"), labels, 10, 1)
    assert (f"{tmp_path / 'labels.csv'} line 3 (s1 v1): 1 event(s) start after the last frame "
            f"199 of the video's features, first onset 5000") in caplog.text
    assert spot.max() > 0   # the event inside the video is a target


def test_train_fold_features_without_subjects(tmp_path):
    from mepkg.train import TrainConfig, run_fold

    sets = [_feature_set("", "v1"), _feature_set("", "v2")]
    labels = write(tmp_path / "labels.csv", "subject,video,onset,offset,type\ns1,v1,10,20,micro\n")
    with pytest.raises(ValueError, match=r"their files record no subject: extract them with "
                                         r"`mepkg features --subject S`"):
        run_fold(None, labels, "s1", tmp_path / "fold", TrainConfig(epochs=1), videos=sets)
    assert not (tmp_path / "fold").exists()


# ---------------------------------------------------------------- messages, bars and Ctrl-C
def test_a_warning_never_lands_inside_a_progress_bar_line():
    import io
    import logging

    from tqdm import tqdm

    from mepkg.messages import BarSafeHandler

    stream = io.StringIO()
    logger = logging.getLogger("mepkg.test_bars")
    logger.propagate = False
    logger.addHandler(BarSafeHandler(stream))
    try:
        with tqdm(total=10, file=stream, mininterval=0) as bar:
            bar.update(3)
            logger.warning("video.mp4: 3 frames filled")
            bar.update(3)
    finally:
        logger.handlers.clear()
    lines = [line.split("\r")[-1] for line in stream.getvalue().split("\n")]
    assert "video.mp4: 3 frames filled" in lines, stream.getvalue()


def test_an_error_line_is_not_glued_to_an_open_bar(monkeypatch, capsys):
    from tqdm import tqdm

    from mepkg import cli
    from mepkg.inputs import InputError

    def fails_mid_bar(args):
        bar = tqdm(total=10, mininterval=0)   # left open, as by a crash inside a loop
        bar.update(4)
        raise InputError("clip.mp4: cannot decode the first sampled frame 0")

    monkeypatch.setattr(cli, "_cmd_synth", fails_mid_bar)
    assert cli.main(["synth", "--out", "unused"]) == 2
    lines = [line.split("\r")[-1] for line in capsys.readouterr().err.split("\n")]
    assert "mepkg synth: error: clip.mp4: cannot decode the first sampled frame 0" in lines


def test_ctrl_c_in_a_workflow_job_is_one_line(tmp_path):
    script = write(tmp_path / "job.py", f"""
import types
from mepkg.jobs import setup_job
setup_job(types.SimpleNamespace(log=[{str(tmp_path / 'job.log')!r}], threads=1, rule="r"))
raise KeyboardInterrupt
""")
    proc = subprocess.run([sys.executable, script], env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr
    assert proc.stderr.strip().endswith("ERROR job: interrupted"), proc.stderr
    assert "interrupted" in (tmp_path / "job.log").read_text()


def test_evaluate_warns_about_repeated_predictions(tmp_path):
    pred = write(tmp_path / "pred.csv", PRED_HEADER + "001,v1,10,30,negative\n" * 2)
    proc = mepkg("evaluate", "--pred", pred, "--gt", write(tmp_path / "gt.csv", GT),
                 "--out", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    assert ("pred.csv: 1 row(s) repeat an earlier one (first: data row 2); each repeat "
            "counts as a false positive") in proc.stderr
    gt = write(tmp_path / "gt.csv", GT + "001,v2,50,80,positive\n")
    proc = mepkg("evaluate", "--pred", pred, "--gt", gt, "--out", tmp_path / "m.json")
    assert "gt.csv: 1 row(s) repeat an earlier one (first: data row 3)" in proc.stderr


def test_decode_damaged_or_empty_scores_and_nan_k_prime(tmp_path, cli):
    import h5py

    with h5py.File(tmp_path / "dims.h5", "w") as h5:
        h5.attrs["schema"] = "mepkg.scores/1"
        h5.create_group("v").create_dataset("spot", data=np.zeros((3, 3)))
    with h5py.File(tmp_path / "none.h5", "w") as h5:
        h5.attrs["schema"] = "mepkg.scores/1"
    good = scores_file(tmp_path / "scores.h5")
    priors = write(tmp_path / "priors.yaml", "k_prime: 3\n")
    nan = write(tmp_path / "nan.yaml", "k_prime: .nan\n")
    for scores, prior, expected in [
            (tmp_path / "dims.h5", priors, "dims.h5: 'spot' has shape (3, 3)"),
            (tmp_path / "none.h5", priors, "none.h5: no video's scores in it"),
            (good, nan, "nan.yaml: k_prime must be an integer >= 1, got nan")]:
        proc = cli("decode", "--scores", scores, "--priors", prior, "--out", tmp_path / "i.csv")
        assert_one_line_error(proc, "decode", expected)
        assert_nothing_written(tmp_path / "i.csv")


@pytest.mark.parametrize("kind, expected", [
    ("xlsx", "a zip archive (an Excel .xlsx workbook?), not a CSV"),
    ("h5", "an HDF5 file (a mepkg .h5?), not a CSV"),
])
def test_a_binary_file_given_as_a_csv_is_named_as_such(tmp_path, kind, expected):
    if kind == "xlsx":
        pred = casme3_sheet(tmp_path / "pred.xlsx", [["spNO.1", "a", 10, 12, 20, "", "", "happy"]])
    else:
        pred = scores_file(tmp_path / "pred.h5")
    proc = mepkg("evaluate", "--pred", pred, "--gt", write(tmp_path / "gt.csv", GT),
                 "--out", tmp_path / "m.json")
    assert_one_line_error(proc, "evaluate", str(pred), expected)


def test_evaluate_ground_truth_type_is_normalised(tmp_path):
    import json

    gt = write(tmp_path / "gt.csv", "subject,video,onset,offset,emotion,type\n"
                                    "001,v1,10,30,negative,Micro \n001,v2,50,80,positive,MACRO\n")
    pred = write(tmp_path / "pred.csv", PRED_HEADER + "001,v1,10,30,negative\n")
    proc = mepkg("evaluate", "--pred", pred, "--gt", gt, "--out", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    spotting = json.loads((tmp_path / "m.json").read_text())["spotting"]
    assert (spotting["tp"], spotting["fn"]) == (1, 0)


@pytest.mark.parametrize("command", ["landmarks", "features", "convert-checkpoint"])
def test_an_odd_window_length_is_refused_by_the_option(tmp_path, command):
    args = ([tmp_path / "r.pkl", tmp_path / "m.pt"] if command == "convert-checkpoint"
            else [tmp_path / "clip.avi", "--out", tmp_path / "o.h5"])
    proc = mepkg(command, *args, "--k", "7")
    assert_one_line_error(proc, command, "--k: '7' must be an even number >= 2")


def test_decode_labels_of_the_held_out_subject_only(tmp_path, cli):
    labels = write(tmp_path / "labels.csv", "subject,video,onset,offset,type\ns1,v1,10,20,micro\n")
    proc = cli("decode", "--scores", scores_file(tmp_path / "scores.h5"), "--labels", labels,
               "--out", tmp_path / "i.csv")
    assert_one_line_error(proc, "decode", "labels.csv: no micro-expression row of a subject "
                                          "other than the held-out s1")


def test_decode_labels_without_micro_rows(tmp_path, cli):
    labels = write(tmp_path / "labels.csv", "subject,video,onset,offset,type\ns2,v1,10,20,macro\n")
    proc = cli("decode", "--scores", scores_file(tmp_path / "scores.h5"), "--labels", labels,
               "--out", tmp_path / "i.csv")
    assert_one_line_error(proc, "decode", "labels.csv: no micro-expression row")


def test_a_given_rate_that_differs_from_the_files_is_warned_about(tmp_path, caplog):
    import logging

    from mepkg.datasets.frames import open_frames

    video = video_file(tmp_path / "clip.avi", 5, fps=30)
    with caplog.at_level(logging.WARNING):
        assert open_frames(video, fps=60).fps == 60.0
        assert open_frames(video, fps=30).fps == 30.0
    assert caplog.text.count("read at the 60 fps given, not at the 30 fps the file records") == 1


def test_an_hdf5_input_that_is_a_folder_or_truncated(tmp_path, cli):
    folder = tmp_path / "scores.h5"
    folder.mkdir()
    proc = cli("decode", "--scores", folder, "--out", tmp_path / "i.csv")
    assert_one_line_error(proc, "decode", f"{folder} is a folder; give the HDF5 scores file")
    data = scores_file(tmp_path / "whole.h5").read_bytes()
    cut = write(tmp_path / "cut.h5", data[:len(data) // 3])
    line = assert_one_line_error(cli("decode", "--scores", cut, "--out", tmp_path / "i.csv"),
                                 "decode", "cut.h5: not a readable HDF5 scores file")
    assert "Errno" not in line and "buf = " not in line


def test_a_damaged_video_gives_one_line_not_ffmpegs_own(tmp_path):
    """FFmpeg's own complaint ("moov atom not found") would land inside a progress bar."""
    data = video_file(tmp_path / "whole.mp4", 30).read_bytes()
    video = write(tmp_path / "clip.mp4", data[:len(data) // 2])
    proc = mepkg("landmarks", video, "--out", tmp_path / "lm.h5")
    line = assert_one_line_error(proc, "landmarks", "clip.mp4: OpenCV cannot open this video")
    assert proc.stderr.strip().splitlines() == [line]


def test_train_warns_about_labelled_videos_without_features(tmp_path, caplog):
    import logging

    from mepkg.inputs import read_labels_table
    from mepkg.train import _warn_unmatched_labels

    labels = read_labels_table(write(tmp_path / "labels.csv",
                                     "subject,video,onset,offset,type\n"
                                     "s1,v1,10,20,micro\ns1,V1,10,20,micro\ns2,v1,5,9,macro\n"))
    with caplog.at_level(logging.WARNING):
        _warn_unmatched_labels(labels, [_feature_set("s1", "v1"), _feature_set("s2", "v1")])
    assert (f"{tmp_path / 'labels.csv'} line 3 (s1 V1): 1 micro event(s) of 1 video(s) without "
            f"a features file") in caplog.text


@pytest.mark.parametrize("command", ["evaluate", "labels", "decode", "convert-checkpoint",
                                     "decode-megc"])
def test_an_output_that_names_an_input_is_refused(tmp_path, command, cli):
    """Writing it would destroy what is read: ``--out`` = ``--pred``, the label file, ..."""
    pred = write(tmp_path / "pred.csv", PRED_HEADER + "001,v1,10,30,negative\n")
    before = pred.read_bytes()
    args, expected = {
        "evaluate": (["evaluate", "--pred", pred, "--gt", pred, "--out", pred],
                     f"--out {pred} is also --pred"),
        "labels": (["labels", "--dataset", "generic", "--labels", pred, "--out", pred],
                   f"--out {pred} is also --labels"),
        "decode": (["decode", "--scores", pred, "--out", pred], f"--out {pred} is also --scores"),
        "convert-checkpoint": (["convert-checkpoint", pred, pred, "--k", "30", "--frame-skip",
                                "7", "--fps", "200"], f"OUTPUT {pred} is also INPUT"),
        "decode-megc": (["decode", "--scores", tmp_path / "s.h5", "--out", tmp_path / "i.csv",
                         "--megc-out", tmp_path / "i.csv"], "--megc-out"),
    }[command]
    assert_one_line_error(cli(*args), command.split("-megc")[0], expected, "give another name")
    assert pred.read_bytes() == before
