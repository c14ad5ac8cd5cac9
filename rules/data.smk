# Data: the synthetic benchmark (when dataset.name is synthetic), then the
# manifest (one row per video) and labels.csv (one row per event).


rule generate_synthetic:
    message:
        "Rendering the synthetic ME benchmark ({params.synthetic[size]}, {params.synthetic[layout]} layout, seed {params.synthetic[seed]})"
    output:
        # the whole rendered dataset root (frames, label sheets, truth.csv)
        root=directory(synthetic_root(config)),
    params:
        synthetic=config["synthetic"],
    log:
        # beside, not inside, the benchmark folder: the generator renders into
        # a temporary folder and renames it into place when complete
        f"{synthetic_root(config)}.log",
    benchmark:
        f"{synthetic_root(config)}.benchmark.tsv"
    threads: 2
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(60),
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/generate_synthetic.py"


rule build_manifest:
    message:
        "Scanning the {params.adapter} dataset at {params.root}: manifest and labels"
    input:
        # the synthetic benchmark when it is the dataset; a licensed copy is
        # read in place (raw data is assumed not to change under a run)
        synthetic=(
            rules.generate_synthetic.output.root
            if config["dataset"]["name"] == "synthetic"
            else []
        ),
        sheets=label_files(config),
    output:
        labels=f"{RES}/labels.csv",
        manifest=f"{RES}/manifest.csv",
    params:
        # the adapter that reads the root: the synthetic layout, or the dataset itself
        adapter=(
            config["synthetic"]["layout"]
            if config["dataset"]["name"] == "synthetic"
            else config["dataset"]["name"]
        ),
        root=manifest_root,
        # the planned videos (parse time): labels.csv keeps their events only
        videos=sorted(VIDEOS),
        emotion_map=config["dataset"]["emotion_map"],
        max_duration=config["dataset"]["max_duration"],
        # the rate of a generic root's frame folders (the manifest's fps column);
        # 0 for the others (known rates; synthetic renders video files), so
        # that changing it re-runs nothing there
        folder_fps=(
            config["dataset"]["folder_fps"] if config["dataset"]["name"] == "generic" else 0
        ),
    log:
        f"{RES}/logs/build_manifest.log",
    benchmark:
        f"{RES}/benchmarks/build_manifest.tsv"
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(30),
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/build_manifest.py"
