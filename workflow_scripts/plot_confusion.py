"""Recognition confusion matrix of the spotted MEs (rule plot_confusion).

Reads:  input.metrics (metrics.json: the headline mode's TP emotion pairs),
        params.evaluate (analysed emotions).
Writes: output.figure (PNG).
"""

import json
import logging
from pathlib import Path

from mepkg.plots import plot_confusion

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

metrics = json.loads(Path(snakemake.input.metrics).read_text())
plot_confusion(metrics["pairs"], classes=snakemake.params.evaluate["emotions"],
               path=snakemake.output.figure,
               title=f"recognition on spotted TPs ({metrics['mode']}, n = {len(metrics['pairs'])})")
logging.info("%d TP pairs plotted", len(metrics["pairs"]))
