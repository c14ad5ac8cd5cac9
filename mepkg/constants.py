"""The names and sizes every stage shares, spelt once.

Classes    the recognition head's classes in index order (docs/method.md §3): the four
           emotions, then ``neutral`` (no ME) at index 4.
Channels   N_CHANNELS = 36 feature channels per window step: the 18 ROI
           motions of ``mepkg.roi.MOTION_NAMES``, each as (dx, dy), interleaved
           (channel 2 m = dx of motion m, 2 m + 1 = its dy; docs/method.md §2.7).
Landmarks  N_LANDMARKS = 68 iBUG points (dlib / face_alignment order).
Layouts    the folder and file names of the dataset layouts, written by the
           synthetic benchmark (``mepkg.synth``) and read by the adapters
           (``mepkg.datasets``).
Choices    the one list of each set of names a user chooses from: datasets,
           synthetic sizes, landmark backends, scoring modes, decoding
           presets. The modules that implement them, the CLI's choices and the
           schema's enums use these (tests/test_defaults.py checks).

No imports beyond the standard library: any module can use it.
"""

from __future__ import annotations

# ---------------------------------------------------------------- classes
EMOTIONS: tuple[str, ...] = ("negative", "positive", "surprise", "others")
NEUTRAL = "neutral"
CLASS_NAMES: tuple[str, ...] = EMOTIONS + (NEUTRAL,)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}
NEUTRAL_INDEX = CLASS_INDEX[NEUTRAL]     # 4 (docs/method.md §3)
NEGATIVE_INDEX = CLASS_INDEX["negative"]  # 0
N_CLASSES = len(CLASS_NAMES)             # 5

# ---------------------------------------------------------------- features
N_MOTIONS = 18                 # ROI motions per step (mepkg.roi.MOTION_NAMES)
N_CHANNELS = 2 * N_MOTIONS     # 36: (dx, dy) of each motion, interleaved dx0, dy0, dx1, dy1, ...
N_LANDMARKS = 68               # iBUG 68-point landmarks

# ---------------------------------------------------------------- choices
DATASETS: tuple[str, ...] = ("casme3", "sammlv", "generic")       # mepkg.datasets adapters
SYNTHETIC_SIZES: tuple[str, ...] = ("tiny", "small", "standard")  # mepkg.synth.plan.SIZES
LANDMARK_BACKENDS: tuple[str, ...] = ("dlib", "face_alignment")   # mepkg.landmarks; dlib: offline
MODES: tuple[str, ...] = ("official", "strict", "release")        # scoring: mepkg.metrics (§8)
DECODE_PRESET_NAMES: tuple[str, ...] = ("megc_samm", "megc_casme3")  # mepkg.decode (§9.3)

# ---------------------------------------------------------------- dataset layouts
# sammlv:  <root>/SAMM_longvideos/<sub>_<n>/<sub>_<n>_<frame:04d>.jpg (frames from 1)
SAMM_INTERVAL_SHEET = "SAMM_LongVideos_V3_Release.xlsx"   # intervals (micro and macro)
SAMM_EMOTION_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"      # estimated emotions of the MEs
SAMM_FRAMES_DIR = "SAMM_longvideos"
# casme3:  <root>/<subject>/<video>/color/<n>.jpg (frames from 0)
CASME3_LABEL_SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
CASME3_COLOR_DIR = "color"
# generic: <root>/videos/<subject>/<video>.<ext> + <root>/labels.csv (1-based)
GENERIC_LABEL_FILE = "labels.csv"
GENERIC_VIDEOS_DIR = "videos"
# the synthetic benchmark's 0-based ground truth, beside every layout
TRUTH_FILE = "truth.csv"
