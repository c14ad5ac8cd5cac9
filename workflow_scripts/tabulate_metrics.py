"""Combine the per-mode metrics into the run's tables (rule tabulate_metrics).

Reads:  input.modes (metrics/<mode>.json for official, strict and release),
        params.mode (the headline mode).
Writes: output.metrics (metrics.json: the headline mode's result at the top
        level, every mode under its name) and output.table (metrics.csv: one
        row per mode x veto x scope, scope = pooled or a LOSO fold's subject).
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

from mepkg.run_records import tabulate_metrics  # noqa: E402

tabulate_metrics(snakemake.input.modes, snakemake.params.mode, snakemake.output.metrics,
                 snakemake.output.table)
