"""The model `mepkg spot` applies (rule package_model).

Reads:  input.model (trained on every subject), input.labels (k' from their
        micro-expressions), params.decode (the decoding priors), params.trained_on
        (dataset and protocol names).
Writes: output.model (model_all.pt: weights + decoding priors + k' + trained_on).
Only decode params: a prior change re-packages, never re-trains.
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

from mepkg.package import package_model  # noqa: E402

package_model(snakemake.input.model, snakemake.input.labels, snakemake.output.model,
              priors=dict(snakemake.params.decode),
              trained_on=dict(snakemake.params.trained_on))
