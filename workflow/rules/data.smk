rule download:
    """Fetch cifar-10-python.tar.gz (or link dataset.archive) and check its md5."""
    output:
        "resources/cifar-10-python.tar.gz",
    log:
        "logs/download.log",
    benchmark:
        "benchmarks/download.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        # The data's identity, known before anything is fetched: another url or path to the same md5 is the
        # same data and fetches nothing again (the script reads them from the config). Without an md5, the
        # source is all that names the data.
        data=STUDY.dataset.identity()["md5"] or STUDY.dataset.archive or STUDY.dataset.url,
    script:
        "../scripts/download.py"


rule prepare_data:
    """Decode the archive once into a uint8 cache (and its description) that training reads.

    What the cache depends on is the dataset's identity (its md5 and the subsets), a params value; the
    archive is an input through data_input() (common.smk)."""
    input:
        data_input(rules.download.output[0]),
    output:
        npz="results/data/cifar10.npz",
        meta="results/data/cifar10.json",
    log:
        "logs/prepare_data.log",
    benchmark:
        "benchmarks/prepare_data.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        identity=DATASET_IDENTITY,
    script:
        "../scripts/prepare_data.py"
