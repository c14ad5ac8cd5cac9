"""Score curve of one held-out video (rule plot_curves).

Reads:  input.scores (its fold's scores.h5), input.intervals (its fold's
        decoded intervals), input.labels (ground truth).
Writes: output.figure (PNG: spot score, labelled MEs shaded, decoded
        intervals as bars, vetoed ones hatched, frames decoding masked by
        params.quality shaded grey).
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

from mepkg.plots import plot_video_curve  # noqa: E402

plot_video_curve(snakemake.input.scores, snakemake.input.intervals, snakemake.input.labels,
                 snakemake.wildcards.video_id, snakemake.output.figure,
                 quality=snakemake.params.quality)
