#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU host (see ../shared/README.md: after `bash .carry3/unpack.sh`
# the real archive is at /root/cifar-10-python.tar.gz and snakemake is installed). Writes under $OUT:
#   bench-eager/    published-style loader vs ours, eager, same process and card (benchmark.json/.md)
#   bench-compiled/ ours with torch.compile + CUDA graphs
#   study/          a short real-data baseline through the workflow, run in this checkout (metrics,
#                   summary, logs, report.html)
# Usage: OUT=/tmp/out EPOCHS=30 bash tools/gpu/check.sh
set -euo pipefail
OUT=${OUT:?set OUT}
EPOCHS=${EPOCHS:-30}
ARCHIVE=${ARCHIVE:-/root/cifar-10-python.tar.gz}
MD5=${MD5:-81081e8bfcc48835cb04951dd99d8b87}
pip install --quiet --no-deps --no-build-isolation -e .
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"

lrstudy-bench --archive "$ARCHIVE" --epochs 3 --out "$OUT/bench-eager"
lrstudy-bench --data "$OUT/bench-eager/data/cifar10.npz" --epochs 4 --compile --skip-published-style \
    --out "$OUT/bench-compiled"

cat > "$OUT/gpu-study.yaml" <<YAML
dataset: {archive: $ARCHIVE, md5: $MD5}
train: {epochs: $EPOCHS}
execution: {compile: true, device: cuda}
variants: {baseline: {}}
seeds: [0]
YAML
status=0
snakemake --cores 4 --resources gpu=1 --configfile "$OUT/gpu-study.yaml" || status=$?
mkdir -p "$OUT/study"
cp -r results/runs results/aggregate results/figures logs benchmarks report.html "$OUT/study/" 2>/dev/null || true
exit $status
