# Training: one leave-one-subject-out fold per subject (docs/method.md §5), plus one
# model on every subject, packaged with the decoding priors for `mepkg spot`. torch uses the rule's threads and
# a GPU when present (compute.train_device: auto); on SLURM set compute.train_gpus.


# Execution only (config group compute): resources, not params, so moving a
# run from CPU to GPU (or changing threads) re-trains nothing.
TRAIN_ON_GPU = uses_gpu(config["compute"]["train_device"])
TRAIN_RESOURCES = dict(
    mem_mb=per_attempt(config["compute"]["train_mem_mb"]),
    runtime=per_attempt(config["compute"]["train_runtime"]),
    # snakemake-executor-plugin-slurm turns gpu > 0 into --gpus=<n>; 0 asks for none
    gpu=config["compute"]["train_gpus"],
    # a local run's share of its GPU: at most compute.train_jobs_per_gpu training
    # jobs hold one at once (the limit below); 0 for a job that trains on the CPU
    gpu_slots=int(TRAIN_ON_GPU),
    # torch device: auto (cuda when present) | cpu | cuda[:n]; read by the script
    device=config["compute"]["train_device"],
    # 1: replay each training step as one CUDA graph on a GPU (0: eager); read by the script
    cuda_graph=int(config["compute"]["train_cuda_graph"]),
)
limit_local_resource(
    "gpu_slots",
    config["compute"]["train_jobs_per_gpu"],
    (
        f"training on the GPU: at most {config['compute']['train_jobs_per_gpu']} "
        f"training job(s) at once (compute.train_jobs_per_gpu)"
        if TRAIN_ON_GPU
        else None
    ),
)


rule train_fold:
    message:
        "Training LOSO fold {wildcards.subject} ({params.train[epochs]} epochs, {threads} threads)"
    input:
        features=all_features,
        labels=rules.build_manifest.output.labels,
    output:
        model=f"{RES}/folds/{{subject}}/model.pt",
        scores=f"{RES}/folds/{{subject}}/scores.h5",
        train_log=f"{RES}/folds/{{subject}}/train_log.csv",
    params:
        train=config["train"],
        quality=config["quality"],
    log:
        f"{RES}/logs/train_fold/{{subject}}.log",
    benchmark:
        f"{RES}/benchmarks/train_fold/{{subject}}.tsv"
    threads: config["compute"]["train_threads"]
    resources:
        **TRAIN_RESOURCES,
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/train_fold.py"


rule train_all_subjects:
    message:
        "Training one model on every subject (for `mepkg spot`, {threads} threads)"
    input:
        features=all_features,
        labels=rules.build_manifest.output.labels,
    output:
        model=f"{RES}/model_all/model.pt",
        train_log=f"{RES}/model_all/train_log.csv",
    params:
        train=config["train"],
        quality=config["quality"],
        # recorded in the model file: `mepkg spot` says when it applies a synthetic-trained model
        trained_on={
            "dataset": config["dataset"]["name"],
            "run": RUN,
            "synthetic": config["dataset"]["name"] == "synthetic",
        },
    log:
        f"{RES}/logs/train_all_subjects.log",
    benchmark:
        f"{RES}/benchmarks/train_all_subjects.tsv"
    threads: config["compute"]["train_threads"]
    resources:
        **TRAIN_RESOURCES,
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/train_all_subjects.py"


rule package_model:
    message:
        "Packaging the all-subject model with the decoding priors: {output.model}"
    input:
        model=rules.train_all_subjects.output.model,
        labels=rules.build_manifest.output.labels,
        code=module_file("mepkg.package"),
    output:
        model=f"{RES}/model_all.pt",
    params:
        decode=config["decode"],
        # recorded in the model file's trained_on (mepkg.model)
        trained_on={"dataset": config["dataset"]["name"], "protocol": protocol_name(config)},
    log:
        f"{RES}/logs/package_model.log",
    benchmark:
        f"{RES}/benchmarks/package_model.tsv"
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(10),
    conda:
        "../envs/mepkg.yaml"
    script:
        "../workflow_scripts/package_model.py"
