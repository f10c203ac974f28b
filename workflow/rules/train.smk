rule train:
    """One seeded run of one variant. Resumes from results/checkpoints/ after an interruption."""
    input:
        npz=rules.prepare_data.output.npz,
        meta=rules.prepare_data.output.meta,
    output:
        metrics="results/runs/{variant}/seed{seed}/metrics.csv",
        summary="results/runs/{variant}/seed{seed}/summary.json",
        model="results/runs/{variant}/seed{seed}/model.pt",
    params:
        train=train_config,
        # Not an output: Snakemake would delete it as incomplete after a crash, and it is what we resume from.
        checkpoint="results/checkpoints/{variant}/seed{seed}.pt",
        gpu_locks=".locks/gpu",
        runs_per_gpu=config["runs_per_gpu"],
    threads: 2
    resources:
        gpu=uses_gpu,
    log:
        "logs/train/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{variant}/seed{seed}.tsv"
    conda:
        "../envs/study.yaml"
    script:
        "../scripts/train.py"



rule unconfigured_run:
    """Turns a target outside the study into a clear error instead of 'No rule to produce'. Its
    wildcard cannot match a configured run, so it never competes with `train`."""
    input:
        reject_unconfigured,
    output:
        "results/runs/{other_run}/{file}",
    wildcard_constraints:
        other_run=UNCONFIGURED_RUN,
    log:
        "logs/unconfigured/{other_run}/{file}.log",
    run:
        raise ConfigError(f"{output[0]} is not part of the configured study")
