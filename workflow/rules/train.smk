rule train:
    """One seeded run of one variant. Resumes from results/checkpoints/ after an interruption.

    A run depends on its recipe and the dataset's identity (params), never on the cache file's date: while
    the cache is the configured data's, it is ancient() (data_input), so a rebuilt or damaged cache cannot
    throw finished runs away. The cache is verified against its recorded checksum before training reads it."""
    input:
        npz=data_input(rules.prepare_data.output.npz),
        meta=data_input(rules.prepare_data.output.meta),
    output:
        metrics="results/runs/{variant}/seed{seed}/metrics.csv",
        summary="results/runs/{variant}/seed{seed}/summary.json",
        model="results/runs/{variant}/seed{seed}/model.pt",
    log:
        "logs/train/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{variant}/seed{seed}.tsv"
    conda:
        "../envs/train.yaml"
    container:
        config["containers"]["train"]
    threads: STUDY.execution.cpu_threads
    resources:
        gpu=uses_gpu,
    params:
        recipe=recipe_json,
        dataset=DATASET_IDENTITY,
        # Not an output: Snakemake would delete it as incomplete after a crash, and it is what we resume from.
        checkpoint="results/checkpoints/{variant}/seed{seed}.pt",
        gpu_locks=src(".locks/gpu"),
        project=SRC,
    script:
        "../scripts/train.py"


rule variant_summary:
    """One variant's runs, one row per seed: the target that trains (or retrains) exactly that variant."""
    input:
        metrics=expand("results/runs/{{variant}}/seed{seed}/metrics.csv", seed=SEEDS),
        summaries=expand("results/runs/{{variant}}/seed{seed}/summary.json", seed=SEEDS),
    output:
        "results/runs/{variant}/summary.csv",
    log:
        "logs/variant_summary/{variant}.log",
    benchmark:
        "benchmarks/variant_summary/{variant}.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        code=code_of("variant_summary.py"),
        deleted_runs=deleted_runs,
    script:
        "../scripts/variant_summary.py"


rule unconfigured_run:
    """Turns a target outside the study into a clear error instead of 'No rule to produce'. Its
    wildcard cannot match a configured run, so it never competes with `train`."""
    input:
        reject_unconfigured,
    output:
        "results/runs/{other_run}/{file}",
    log:
        "logs/unconfigured/{other_run}/{file}.log",
    wildcard_constraints:
        other_run=UNCONFIGURED_RUN,
    run:
        raise ConfigError(f"{output[0]} is not part of the configured study")


rule unconfigured_variant:
    """The same for a variant summary outside the study."""
    input:
        reject_unconfigured,
    output:
        "results/runs/{other_variant}/summary.csv",
    log:
        "logs/unconfigured/{other_variant}.log",
    wildcard_constraints:
        other_variant=UNCONFIGURED_VARIANT,
    run:
        raise ConfigError(f"{output[0]} is not part of the configured study")
