"""Pooled scores against the decoding threshold p (rule plot_threshold_sweep).

Reads:  input.scores (every fold's score curves), input.labels,
        params.decode (the other priors), params.quality (the frames masked, as
        in decode_fold), params (mode, emotions, sweep_p).
Writes: output.table (CSV: one row per p) and output.figure (PNG).
Decodes saved curves only: no model is run.
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

from mepkg.plots import run_threshold_sweep  # noqa: E402

run_threshold_sweep(snakemake.input.scores, snakemake.input.labels, snakemake.params.decode,
                    snakemake.params.sweep_p, snakemake.output.table, snakemake.output.figure,
                    mode=snakemake.params.mode, emotions=snakemake.params.emotions,
                    quality=snakemake.params.quality)
