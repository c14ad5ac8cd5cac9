# Evaluation: pool the folds' intervals, score them (official, strict and
# release STRS, each with and without the neutral veto, docs/method.md §7-8),
# tabulate, plot. Figures and tables are marked for `snakemake --report report.html`.

MODES = ("official", "strict", "release")

# score curves: every video that is held out in some fold
CURVE_VIDEOS = sorted(v for v, subject in VIDEOS.items() if subject in FOLDS)

ALL_PLOTS = [
    *expand(f"{RES}/plots/curves/{{video_id}}.png", video_id=CURVE_VIDEOS),
    f"{RES}/plots/confusion.png",
    f"{RES}/plots/fold_strs.png",
    f"{RES}/plots/threshold_sweep.png",
]


rule collect_predictions:
    message:
        f"Pooling the intervals of {len(FOLDS)} LOSO folds"
    input:
        intervals=fold_outputs(rules.decode_fold.output.intervals),
    output:
        predictions=report(
            f"{RES}/predictions.csv",
            caption="../report/predictions.rst",
            category="Predictions",
        ),
    log:
        f"{RES}/logs/collect_predictions.log",
    benchmark:
        f"{RES}/benchmarks/collect_predictions.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/collect_predictions.py"


rule evaluate:
    message:
        "Scoring the predictions ({wildcards.mode} STRS, with and without the neutral veto)"
    input:
        predictions=rules.collect_predictions.output.predictions,
        labels=rules.build_manifest.output.labels,
        code=[module_file("mepkg.metrics"), module_file("mepkg.intervals")],
    output:
        metrics=f"{RES}/metrics/{{mode}}.json",
    params:
        emotions=config["evaluate"]["emotions"],
        bootstrap=config["evaluate"]["bootstrap"],
        seed=config["evaluate"]["seed"],
        # release mode scores at the sampled rate (docs/method.md §7.3)
        frame_skip=config["features"]["frame_skip"],
    wildcard_constraints:
        mode="|".join(MODES),
    log:
        f"{RES}/logs/evaluate/{{mode}}.log",
    benchmark:
        f"{RES}/benchmarks/evaluate/{{mode}}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/evaluate.py"


rule tabulate_metrics:
    message:
        "Pooled metrics: {output.metrics} and {output.table}"
    input:
        modes=expand(rules.evaluate.output.metrics, mode=MODES),
    output:
        metrics=f"{RES}/metrics.json",
        table=report(
            f"{RES}/metrics.csv",
            caption="../report/metrics.rst",
            category="Metrics",
        ),
    params:
        mode=config["evaluate"]["mode"],  # the headline mode
    log:
        f"{RES}/logs/tabulate_metrics.log",
    benchmark:
        f"{RES}/benchmarks/tabulate_metrics.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/tabulate_metrics.py"


rule megc_submission:
    message:
        "MEGC submission CSV (1-based frames, vetoed rows dropped): {output.submission}"
    input:
        predictions=rules.collect_predictions.output.predictions,
        code=module_file("mepkg.decode"),
    output:
        submission=f"{RES}/megc_submission.csv",
    log:
        f"{RES}/logs/megc_submission.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/megc_submission.py"


rule plot_curves:
    message:
        "Plotting the score curve of {wildcards.video_id} with decoded and true intervals"
    input:
        scores=lambda w: rules.train_fold.output.scores.format(subject=VIDEOS[w.video_id]),
        intervals=lambda w: rules.decode_fold.output.intervals.format(subject=VIDEOS[w.video_id]),
        labels=rules.build_manifest.output.labels,
        code=module_file("mepkg.plots"),
    output:
        figure=report(
            f"{RES}/plots/curves/{{video_id}}.png",
            caption="../report/score_curves.rst",
            category="Score curves",
            labels={"video": "{video_id}"},
        ),
    log:
        f"{RES}/logs/plot_curves/{{video_id}}.log",
    benchmark:
        f"{RES}/benchmarks/plot_curves/{{video_id}}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/plot_curves.py"


rule plot_confusion:
    message:
        "Plotting the recognition confusion matrix of spotted MEs"
    input:
        metrics=rules.tabulate_metrics.output.metrics,
        code=module_file("mepkg.plots"),
    output:
        figure=report(
            f"{RES}/plots/confusion.png",
            caption="../report/confusion.rst",
            category="Figures",
        ),
    params:
        emotions=config["evaluate"]["emotions"],
    log:
        f"{RES}/logs/plot_confusion.log",
    benchmark:
        f"{RES}/benchmarks/plot_confusion.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/plot_confusion.py"


rule plot_fold_strs:
    message:
        "Plotting STRS per LOSO fold"
    input:
        metrics=rules.tabulate_metrics.output.metrics,
        code=module_file("mepkg.plots"),
    output:
        figure=report(
            f"{RES}/plots/fold_strs.png",
            caption="../report/fold_strs.rst",
            category="Figures",
        ),
    log:
        f"{RES}/logs/plot_fold_strs.log",
    benchmark:
        f"{RES}/benchmarks/plot_fold_strs.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/plot_fold_strs.py"


rule plot_threshold_sweep:
    message:
        "Sweeping the decoding threshold p over {params.sweep_p}"
    input:
        scores=fold_outputs(rules.train_fold.output.scores),
        labels=rules.build_manifest.output.labels,
        code=[module_file("mepkg.plots"), module_file("mepkg.decode")],
    output:
        figure=report(
            f"{RES}/plots/threshold_sweep.png",
            caption="../report/threshold_sweep.rst",
            category="Figures",
        ),
        table=f"{RES}/plots/threshold_sweep.csv",
    params:
        decode=config["decode"],
        quality=config["quality"],
        mode=config["evaluate"]["mode"],
        emotions=config["evaluate"]["emotions"],
        sweep_p=config["evaluate"]["sweep_p"],
    log:
        f"{RES}/logs/plot_threshold_sweep.log",
    benchmark:
        f"{RES}/benchmarks/plot_threshold_sweep.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/plot_threshold_sweep.py"


rule summarise_run:
    message:
        "Run summary: {output.summary}"
    input:
        metrics=rules.tabulate_metrics.output.metrics,
        labels=rules.build_manifest.output.labels,
        features=all_features,
    output:
        summary=f"{RES}/summary.json",
    params:
        run=RUN,
        quality=config["quality"],
        settings=metric_settings(config),
        folds=FOLDS,
        n_videos=len(VIDEOS),
    log:
        f"{RES}/logs/summarise_run.log",
    benchmark:
        f"{RES}/benchmarks/summarise_run.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/summarise_run.py"
