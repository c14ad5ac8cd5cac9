# Evaluation: pool the folds' intervals, score them (official, strict and
# release STRS, each with and without the neutral veto, docs/method.md §7-8),
# tabulate, plot. Figures and tables are marked for `snakemake --report report.html`.

from mepkg.metrics import MODES  # official, strict, release (mepkg.metrics.SCORING_MODES)

# score curves: every video that is held out in some fold
CURVE_VIDEOS = sorted(v for v, subject in VIDEOS.items() if subject in FOLDS)

# every figure in each of plots.formats (png, pdf, svg)
FIGURE_FORMATS = config["plots"]["formats"]

ALL_PLOTS = [
    *expand(f"{RES}/plots/curves/{{video_id}}.{{fmt}}", video_id=CURVE_VIDEOS, fmt=FIGURE_FORMATS),
    *expand(
        f"{RES}/plots/{{name}}.{{fmt}}",
        name=["confusion", "fold_strs", "threshold_sweep"],
        fmt=FIGURE_FORMATS,
    ),
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
        mem_mb=per_attempt(1000),
        runtime=per_attempt(5),
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
    wildcard_constraints:
        mode="|".join(MODES),
    log:
        f"{RES}/logs/evaluate/{{mode}}.log",
    benchmark:
        f"{RES}/benchmarks/evaluate/{{mode}}.tsv"
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(10),
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
        mem_mb=per_attempt(500),
        runtime=per_attempt(5),
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/tabulate_metrics.py"


rule megc_submission:
    message:
        "MEGC submission CSV ({params.decode[submission]} rows): {output.submission}"
    input:
        predictions=rules.collect_predictions.output.predictions,
        code=module_file("mepkg.decode"),
    output:
        submission=f"{RES}/megc_submission.csv",
    params:
        # decode.submission picks the rows; the release's rows also need the
        # interval strategy and k' (preset applied); the sampled rate is each
        # prediction's frame_skip column
        decode=config["decode"],
    log:
        f"{RES}/logs/megc_submission.log",
    threads: 1
    resources:
        mem_mb=per_attempt(500),
        runtime=per_attempt(5),
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
        figure=figure_files(
            f"{RES}/plots/curves/{{video_id}}",
            caption="../report/score_curves.rst",
            category="Score curves",
            labels={"video": "{video_id}"},
        ),
    params:
        quality=config["quality"],
    log:
        f"{RES}/logs/plot_curves/{{video_id}}.log",
    benchmark:
        f"{RES}/benchmarks/plot_curves/{{video_id}}.tsv"
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(5),
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
        figure=figure_files(
            f"{RES}/plots/confusion",
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
        mem_mb=per_attempt(1000),
        runtime=per_attempt(5),
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
        figure=figure_files(
            f"{RES}/plots/fold_strs",
            caption="../report/fold_strs.rst",
            category="Figures",
        ),
    log:
        f"{RES}/logs/plot_fold_strs.log",
    benchmark:
        f"{RES}/benchmarks/plot_fold_strs.tsv"
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(5),
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
        figure=figure_files(
            f"{RES}/plots/threshold_sweep",
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
        mem_mb=per_attempt(2000),
        runtime=per_attempt(30),
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
        mem_mb=per_attempt(500),
        runtime=per_attempt(5),
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/summarise_run.py"
