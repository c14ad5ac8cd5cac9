"""The model `mepkg spot` applies (rule package_model).

Reads:  input.model (trained on every subject), input.labels (k' from their
        micro-expressions), params.decode (the decoding priors).
Writes: output.model (model_all.pt: weights + decoding priors + k').
Only decode params: a prior change re-packages, never re-trains.
"""

import logging

from mepkg.decode import DecodePriors
from mepkg.spot import package_model

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

priors = DecodePriors.from_dict(dict(snakemake.params.decode), source="config.yaml decode")
package_model(snakemake.input.model, snakemake.input.labels, snakemake.output.model, priors=priors)
