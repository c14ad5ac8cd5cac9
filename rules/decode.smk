# Decoding: a fold's score curves -> intervals with an emotion (docs/method.md §6;
# ablation switches and MEGC test-set presets: decode.interval, decode.synergy,
# decode.preset, §9).
# Only the decode and quality groups are params: changing a prior re-runs this and the
# evaluation, never the model. The priors used (and k' rule) are written
# beside the intervals as a record.


rule decode_fold:
    message:
        "Decoding fold {wildcards.subject} (p={params.decode[p]}, k' from {params.decode[k_rule]}, "
        "preset '{params.decode[preset]}')"
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
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/decode_fold.py"
