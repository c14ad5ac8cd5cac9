# Features: per video, reference-frame landmarks (docs/method.md §2.1), then ROI optical
# flow window features (docs/method.md §2.2-§2.8). One job per video, single-threaded
# OpenCV inside; Snakemake runs videos in parallel.
#
# The manifest is an ancient() input: it only tells where a video lies and
# its fps, so rebuilding it (e.g. after a label filter change) does not
# re-extract features.


rule detect_landmarks:
    message:
        "Landmarks of {wildcards.video_id} ({params.features[backend]}, k={params.features[k]}, frame_skip={params.features[frame_skip]})"
    input:
        manifest=ancient(rules.build_manifest.output.manifest),
    output:
        landmarks=f"{RES}/landmarks/{{video_id}}.h5",
    params:
        # the part of the features group that landmarks depend on: a flow
        # parameter change re-runs extract_features, not this
        features={k: config["features"][k] for k in ("k", "frame_skip", "backend")},
    log:
        f"{RES}/logs/detect_landmarks/{{video_id}}.log",
    benchmark:
        f"{RES}/benchmarks/detect_landmarks/{{video_id}}.tsv"
    threads: 1
    resources:
        mem_mb=per_attempt(config["compute"]["feature_mem_mb"]),
        runtime=per_attempt(config["compute"]["feature_runtime"]),
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/detect_landmarks.py"


rule extract_features:
    message:
        "ROI optical-flow features of {wildcards.video_id}"
    input:
        manifest=ancient(rules.build_manifest.output.manifest),
        landmarks=rules.detect_landmarks.output.landmarks,
    output:
        features=f"{RES}/features/{{video_id}}.h5",
    params:
        features=config["features"],
    log:
        f"{RES}/logs/extract_features/{{video_id}}.log",
    benchmark:
        f"{RES}/benchmarks/extract_features/{{video_id}}.tsv"
    threads: 1
    resources:
        mem_mb=per_attempt(config["compute"]["feature_mem_mb"]),
        runtime=per_attempt(config["compute"]["feature_runtime"]),
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/extract_features.py"
