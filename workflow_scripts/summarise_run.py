"""A one-file record of the run (rule summarise_run).

Reads:  input.metrics, input.labels, input.features, params.run / folds /
        n_videos / settings (the config groups the metrics depend on) /
        quality (the policy: which windows count as usable, the warning level).
Writes: output.summary (summary.json: run, dataset size, headline metrics
        with and without the neutral veto, bootstrap interval, settings used,
        each video's share of usable windows).
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

from mepkg.run_records import summarise_run  # noqa: E402

summarise_run(snakemake.input.metrics, snakemake.input.labels, snakemake.output.summary,
              run=snakemake.params.run, folds=snakemake.params.folds,
              n_videos=snakemake.params.n_videos, settings=snakemake.params.settings,
              features=snakemake.input.features, quality=snakemake.params.quality)
