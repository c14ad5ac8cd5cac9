"""Prior-guided decoding of one LOSO fold (rule decode_fold).

Reads:  input.scores (the held-out videos' score curves), input.labels (for
        k' from the training subjects), params.decode (DecodePriors fields).
Writes: output.priors (the priors used, YAML) and output.intervals (every
        decoded interval, original 0-based frames, `vetoed` marking the
        neutral veto).
"""

import logging

import yaml

from mepkg.atomic import atomic_output
from mepkg.decode import DecodePriors, run_decode

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

priors = DecodePriors.from_dict(dict(snakemake.params.decode), source="config.yaml decode")
with atomic_output(snakemake.output.priors) as tmp:
    tmp.write_text(yaml.safe_dump(priors.to_dict(), sort_keys=False))
run_decode([snakemake.input.scores], snakemake.output.intervals,
           priors_file=snakemake.output.priors, labels=snakemake.input.labels)
