"""Prior-guided decoding of one LOSO fold (rule decode_fold).

Reads:  input.scores (the held-out videos' score curves), input.labels (for
        k' from the training subjects), params.decode (DecodePriors fields),
        params.quality (QualityPolicy fields: the frames masked in decoding).
Writes: output.intervals (every decoded interval, original 0-based frames,
        `vetoed` marking the neutral veto) and output.priors (a record of the
        priors and the k' used, YAML).
"""

from mepkg.jobs import setup_job

setup_job(snakemake)

from mepkg.decode import decode_fold  # noqa: E402

decode_fold(snakemake.input.scores, snakemake.input.labels, snakemake.params.decode,
            snakemake.output.intervals, snakemake.output.priors,
            quality=snakemake.params.quality)
