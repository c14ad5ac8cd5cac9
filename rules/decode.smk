# Decode each fold: its score curves -> intervals with an emotion (docs/method.md §6;
# ablation switches and MEGC test-set presets: decode.interval, decode.synergy,
# decode.preset, §9).
# Only the decode and quality groups are params: changing a prior re-runs this and the
# evaluation, never the model. The priors used (and k' rule) are written
# beside the intervals as a record.


from mepkg.decode import DecodePriors

# the priors with the preset applied, as decode_fold uses them (shown in the message)
DECODE_PRIORS = DecodePriors.of(config["decode"])


rule decode_fold:
    message:
        f"Decoding fold {{wildcards.subject}} (p={DECODE_PRIORS.p}, "
        f"k' from {DECODE_PRIORS.k_rule}, preset '{DECODE_PRIORS.preset}')"
    input:
        scores=rules.train_fold.output.scores,
        labels=rules.build_manifest.output.labels,
        code=[module_file("mepkg.decode"), module_file("mepkg.intervals")],
    output:
        intervals=f"{RES}/decode/folds/{{subject}}.csv",
        priors=f"{RES}/decode/folds/{{subject}}.priors.yaml",
    params:
        decode=config["decode"],
        quality=config["quality"],
    log:
        f"{RES}/logs/decode_fold/{{subject}}.log",
    benchmark:
        f"{RES}/benchmarks/decode_fold/{{subject}}.tsv"
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(10),
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/decode_fold.py"
