"""Render the synthetic ME benchmark (rule generate_synthetic).

Reads:  params.synthetic (size, layout, seed); renders with `threads` processes.
Writes: output.root, a dataset root in the chosen layout: frames, label
        sheets and truth.csv (the ground truth, labels.csv format). It is
        rendered in a temporary folder and renamed into place when complete.
"""

import logging
from pathlib import Path

from mepkg.synth import generate_benchmark

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

syn = snakemake.params.synthetic
root = Path(snakemake.output.root)
logging.info("rendering the %s synthetic benchmark (%s layout, seed %d) into %s",
             syn["size"], syn["layout"], syn["seed"], root)
generate_benchmark(root, size=syn["size"], layout=syn["layout"], seed=syn["seed"],
                   progress=True, workers=snakemake.threads)
