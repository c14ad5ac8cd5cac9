"""Render the synthetic ME benchmark (rule generate_synthetic).

Reads:  params.synthetic (size, layout, seed, hazards); renders with `threads` processes.
Writes: output.root, a dataset root in the chosen layout: frames, label
        sheets and truth.csv (the ground truth, labels.csv format), and
        hazards.csv when hazards are on. It is
        rendered in a temporary folder and renamed into place when complete.
"""

from mepkg.jobs import setup_job

threads = setup_job(snakemake)

from mepkg.synth import generate_benchmark  # noqa: E402

syn = snakemake.params.synthetic
generate_benchmark(snakemake.output.root, size=syn["size"], layout=syn["layout"],
                   seed=syn["seed"], progress=True, workers=threads, hazards=syn["hazards"])
