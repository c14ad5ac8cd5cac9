"""The MEGC submission CSV of the pooled predictions (rule megc_submission).

Reads:  input.predictions (predictions.csv, original 0-based frames, `vetoed`),
        params.decode (DecodePriors fields: `submission` picks the rows).
Writes: output.submission (subject, video, onset, offset, emotion; by default
        vetoed rows dropped, onset/offset 1-based = 0-based + 1; `submission:
        release` writes the authors' rows; docs/method.md §9.3).
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

from mepkg.decode import write_megc_submission  # noqa: E402

write_megc_submission(snakemake.input.predictions, snakemake.output.submission,
                      priors=snakemake.params.decode)
