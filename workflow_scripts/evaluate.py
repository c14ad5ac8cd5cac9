"""STRS of the pooled predictions in one mode (rule evaluate).

Reads:  input.predictions, input.labels (ground truth, micro rows), the
        mode wildcard (official | strict | release), params (emotions,
        bootstrap, seed). Release mode scores at the sampled rate of the
        predictions' frame_skip column.
Writes: output.metrics (JSON: spotting, recognition, STRS per subject and
        pooled, with and without the neutral veto, bootstrap interval).
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

from mepkg.metrics import run_evaluate  # noqa: E402

run_evaluate(snakemake.input.predictions, snakemake.input.labels, snakemake.output.metrics,
             mode=snakemake.wildcards.mode, emotions=tuple(snakemake.params.emotions),
             n_bootstrap=snakemake.params.bootstrap, seed=snakemake.params.seed)
