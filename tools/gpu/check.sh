#!/usr/bin/env bash
# The GPU measurements (issue 9) in ONE device call of at most 9 minutes; tools/gpu/check.py says what
# it measures and writes (OUT/measurements/<card>-<date>/, ready to commit).
#
# Rehearse here first, on the CPU (about 3 minutes on 2 cores; the real archive, see ../shared/README.md):
#   DRY=1 OUT=/tmp/check ARCHIVE=/tmp/cifar-10-python.tar.gz bash tools/gpu/check.sh
# On a lent host, with the device tool, back to back (a warm host keeps what a call wrote outside $OUT):
#   here, once:             ../shared/gpu/stage.sh
#   run carry [".carry0"]:  mkdir -p /root/stash && cp .carry0/* /root/stash/
#   run carry [".carry1"]:  cp .carry1/* /root/stash/          (and the same with .carry2)
#   run carry [".carry3"]:  bash .carry3/unpack.sh             (joins the archive, installs snakemake)
#   run timeout_s 540:      OUT=$OUT bash tools/gpu/check.sh   (the measurements: 510 s of steps)
# Only OUT/measurements/ is meant to come back; the data cache and models stay in /tmp/lrstudy-check.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:?set OUT to the folder that comes back}
mkdir -p "$OUT"
# The checkout itself is the package: no install step that needs a build backend on the host.
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [[ ${DRY:-0} == 1 ]]; then
    PY=${PY:-.venv/bin/python}
    ARCHIVE=${ARCHIVE:-/tmp/cifar-10-python.tar.gz}
    exec "$PY" tools/gpu/check.py --archive "$ARCHIVE" --out "$OUT" --dry --budget-s "${BUDGET_S:-600}"
fi
PY=${PY:-python3}
ARCHIVE=${ARCHIVE:-/root/cifar-10-python.tar.gz}
# The whole call must fit 9 minutes with the host's start-up already spent: 510 s for the steps.
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/nvidia-smi.csv"
exec "$PY" tools/gpu/check.py --archive "$ARCHIVE" --out "$OUT" --budget-s "${BUDGET_S:-510}"
