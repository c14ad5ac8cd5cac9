# mepkg: prior-guided video-level regression for micro-expression analysis.
#
#   snakemake --cores 8                                   # synthetic benchmark, every LOSO fold
#   snakemake --cores 8 --config dataset=sammlv data_root=/data/SAMM-LV
#   snakemake --profile profiles/slurm                    # the same on a SLURM cluster
#
# Stages (one rule file each): data -> features -> train -> decode -> evaluate.
# Outputs under results/<run_name>/ (see config.yaml); the logic lives in mepkg,
# the rules only wire files to it.

import re
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import min_version

from mepkg.jobs import usable_cores, uses_gpu

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"


# Thread budget: a local run never starts more threads at once than the machine
# has usable cores, however large --cores is; rule threads are scaled down to it too.
CORES = workflow.resource_settings.cores  # --cores; None when not given
if (CORES or 0) > usable_cores():
    limit_local_resource(
        "_cores",
        usable_cores(),
        f"--cores {CORES} > {usable_cores()} usable cores: "
        f"running at most {usable_cores()} threads of jobs at once",
    )


# The per-dataset protocol (docs/method.md §1.6) overrides config.yaml's defaults;
# --configfile and --config still win (Snakemake re-applies them).
if PROTOCOL_FILE:

    configfile: PROTOCOL_FILE


if SYNTHETIC_FILE:

    configfile: SYNTHETIC_FILE


config = finalise_config(config, workflow.basedir)
RUN = run_name(config)
RES = f"results/{RUN}"
PLAN = workflow_plan(config)
for line in PLAN["warnings"]:
    logger.warning(line)
VIDEOS = PLAN["videos"]  # video_id -> subject
FOLDS = PLAN["folds"]  # held-out subjects, one LOSO fold each


wildcard_constraints:
    video_id="|".join(map(re.escape, VIDEOS)) or "__none__",
    subject="|".join(map(re.escape, FOLDS)) or "__none__",


include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/train.smk"
include: "rules/decode.smk"
include: "rules/evaluate.smk"


report: "report/workflow.rst"


# Cheap rules (seconds: tables, plots, summaries) run on the submitting host
# rather than waiting in the SLURM queue. decode_fold and package_model stay
# jobs: one per fold, they run in parallel on the cluster.
localrules:
    all,
    collect_predictions,
    evaluate,
    tabulate_metrics,
    plot_curves,
    plot_confusion,
    plot_fold_strs,
    plot_threshold_sweep,
    summarise_run,


rule all:
    default_target: True
    input:
        metrics=f"{RES}/metrics.json",
        table=f"{RES}/metrics.csv",
        plots=ALL_PLOTS,
        summary=f"{RES}/summary.json",
        model=f"{RES}/model_all.pt",


onstart:
    logger.info(
        f"mepkg run '{RUN}': dataset {config['dataset']['name']}, "
        f"{len(VIDEOS)} videos, {len(FOLDS)} LOSO folds -> {RES}/"
    )


onsuccess:
    if Path(f"{RES}/metrics.json").exists():
        logger.info(
            f"mepkg run '{RUN}' done.\n"
            f"  metrics: {RES}/metrics.json, {RES}/metrics.csv\n"
            f"  plots:   {RES}/plots/\n"
            f"  summary: {RES}/summary.json\n"
            f"  model for `mepkg spot`: {RES}/model_all.pt\n"
            f"  report:  snakemake --report {RES}/report.html"
        )
