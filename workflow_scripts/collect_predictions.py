"""Pool the folds' intervals into one table (rule collect_predictions).

Reads:  input.intervals (decode/folds/<subject>.csv, one per LOSO fold).
Writes: output.predictions (predictions.csv: every interval, fold order,
        with the `vetoed` column; mepkg.intervals.apply_veto gives the MEGC CSV).
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

from mepkg.decode import pool_intervals  # noqa: E402

pool_intervals(snakemake.input.intervals, snakemake.output.predictions)
