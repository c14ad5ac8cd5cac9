"""Pool the folds' intervals into one table (rule collect_predictions).

Reads:  input.intervals (decode/folds/<subject>.csv, one per LOSO fold).
Writes: output.predictions (predictions.csv: every interval, fold order,
        with the `vetoed` column; mepkg.decode.apply_veto gives the MEGC CSV).
"""

import logging

import pandas as pd

from mepkg.atomic import write_csv

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

tables = [pd.read_csv(path, dtype={"subject": str, "video": str}) for path in snakemake.input.intervals]
predictions = pd.concat(tables, ignore_index=True)
write_csv(predictions, snakemake.output.predictions)
logging.info("%d intervals from %d folds (%d vetoed as neutral)", len(predictions), len(tables),
             int(predictions["vetoed"].sum()) if len(predictions) else 0)
