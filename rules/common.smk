# Config loading and the parse-time plan (which videos, which LOSO folds):
# the functions live in mepkg.workflow (tested without Snakemake); the helpers
# below need the rules' wildcards and inputs.
#
# Snakemake must know every video and every fold before it runs a job, so the
# plan comes from the label sheets (real datasets, mepkg.datasets.read_labels)
# or from the synthetic generator's plan (mepkg.synth.plan_benchmark, no
# rendering). Both are cheap.

import os
from pathlib import Path

from mepkg.jobs import per_attempt  # mem_mb / runtime that grow with each retry
from mepkg.workflow import (
    finalise_config,
    label_files,
    metric_settings,
    module_file,
    protocol_file,
    protocol_name,
    run_name,
    synthetic_file,
    synthetic_root,
    workflow_plan,
)

# envs/mepkg.yaml (`--sdm conda`) installs mepkg with `--editable ${MEPKG_CHECKOUT}`:
# conda runs pip beside Snakemake's copy of the env file (.snakemake/conda/), where
# a relative path would miss the checkout; pip expands the variable from here.
os.environ.update(MEPKG_CHECKOUT=str(Path(workflow.basedir).resolve()))

# the protocol (docs/method.md §1.6) and synthetic settings files, applied by the Snakefile
PROTOCOL_FILE = protocol_file(config, workflow.basedir)
SYNTHETIC_FILE = synthetic_file(config, workflow.basedir)


def manifest_root(wildcards, input):
    """The folder build_manifest scans: the rendered synthetic benchmark, or data_root."""
    if input.synthetic:
        return str(input.synthetic)
    return config["dataset"]["data_root"]


def all_features(wildcards):
    """Every planned video's features: the training set of every fold."""
    return expand(rules.extract_features.output.features, video_id=sorted(VIDEOS))


def fold_outputs(pattern):
    """One path per LOSO fold."""
    return expand(pattern, subject=FOLDS)


def figure_files(stem, **report_args):
    """`stem`.<format> for each of plots.formats; the first is marked for the report."""
    first, *rest = [f"{stem}.{fmt}" for fmt in config["plots"]["formats"]]
    return [report(first, **report_args), *rest]


# Resource limits of a local run (docs/architecture.md). Snakemake has no
# documented way for a Snakefile to set the limit of a global resource (its
# public ones are --resources and a profile's `resources:`);
# workflow.register_resource, the method Snakemake itself registers its job
# mutexes with, is the one call into its internals, made here only.
# Not on a cluster (--jobs/--profile profiles/slurm: `nodes` is set), where each
# job gets its own CPUs and GPUs.
def limit_local_resource(name, limit, message=None):
    """At most ``limit`` of resource ``name`` held by the jobs running at once (local runs)."""
    if workflow.nodes is None:
        if message:
            logger.info(message)
        workflow.register_resource(name, limit)
