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
    threads: 2
    resources:
        gpu=uses_gpu,
    log:
        "logs/train/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{variant}/seed{seed}.tsv"
    script:
        "../scripts/train.py"
