"""The MEGC submission CSV of the pooled predictions (rule megc_submission).

Reads:  input.predictions (predictions.csv, original 0-based frames, `vetoed`).
Writes: output.submission (subject, video, onset, offset, emotion; vetoed rows
        dropped; onset/offset 1-based = 0-based + 1; docs/method.md §9.3).
"""

import logging

from mepkg.decode import write_megc_submission

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

write_megc_submission(snakemake.input.predictions, snakemake.output.submission)
