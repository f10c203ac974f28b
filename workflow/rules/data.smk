rule download:
    """Fetch cifar-10-python.tar.gz (or link dataset.archive) and check its md5."""
    output:
        "resources/cifar-10-python.tar.gz",
    params:
        url=config["dataset"]["url"],
        md5=config["dataset"]["md5"],
        archive=config["dataset"]["archive"],
        retries=config["dataset"]["download_retries"],
    log:
        "logs/download.log",
    benchmark:
        "benchmarks/download.tsv"
    conda:
        "../envs/study.yaml"
    script:
        "../scripts/download.py"


rule prepare_data:
    """Decode the archive once into a uint8 cache (and its description) that training reads."""
    input:
        rules.download.output,
    output:
        npz="results/data/cifar10.npz",
        meta="results/data/cifar10.json",
    params:
        train_limit=config["dataset"]["train_limit"],
        test_limit=config["dataset"]["test_limit"],
    log:
        "logs/prepare_data.log",
    benchmark:
        "benchmarks/prepare_data.tsv"
    conda:
        "../envs/study.yaml"
    script:
        "../scripts/prepare_data.py"
