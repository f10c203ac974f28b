"""Stage 1 of the workflow (rules download, prepare_data): CIFAR-10 fetched or linked, checked against its
md5, decoded once into a uint8 cache with its checksums recorded. Nothing here imports torch."""
