"""Recognition confusion matrix of the spotted MEs (rule plot_confusion).

Reads:  input.metrics (metrics.json: the headline mode's TP emotion pairs),
        params.emotions (the analysed classes).
Writes: output.figure (PNG).
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from mepkg.plots import plot_confusion  # noqa: E402

metrics = json.loads(Path(snakemake.input.metrics).read_text())
plot_confusion(metrics["pairs"], classes=snakemake.params.emotions, path=snakemake.output.figure,
               title=f"recognition on spotted TPs ({metrics['mode']}, n = {len(metrics['pairs'])})")
