rule download:
    """Fetch cifar-10-python.tar.gz (or link dataset.archive) and check its md5."""
    output:
        "resources/cifar-10-python.tar.gz",
    log:
        "logs/download.log",
    benchmark:
        "benchmarks/download.tsv"
    conda:
        "../envs/study.yaml"
    params:
        url=STUDY.dataset.url,
        md5=STUDY.dataset.md5,
        archive=STUDY.dataset.archive,
    script:
        "../scripts/download.py"


rule prepare_data:
    """Decode the archive once into a uint8 cache (and its description) that training reads.

    The archive is ancient(): relinking an identical copy from elsewhere rebuilds nothing. What the cache
    depends on is the dataset's identity (its md5 and the subsets), a params value."""
    input:
        ancient(rules.download.output[0]),
    output:
        npz="results/data/cifar10.npz",
        meta="results/data/cifar10.json",
    log:
        "logs/prepare_data.log",
    benchmark:
        "benchmarks/prepare_data.tsv"
    conda:
        "../envs/study.yaml"
    params:
        identity=DATASET_IDENTITY,
    script:
        "../scripts/prepare_data.py"
