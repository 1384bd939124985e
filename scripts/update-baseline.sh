#!/usr/bin/env bash
# Re-runs a CI-gated suite (debug build, 2 threads, as .ci/run does) into results/SUITE and regenerates
# the tables made from results (README.md's blocks). For when a change is meant to change the
# numbers: commit the result files with the change, and say why in the message.
#   bash scripts/update-baseline.sh [smoke|olora-quick]     (default: smoke)
# olora-quick needs all-MiniLM-L6-v2 (scripts/fetch-minilm.sh) and ../shared/data/cl-benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:-smoke}
data=${CLBENCH_DATA:-../shared/data}
swift build --product clbench
rm -rf "results/$suite"
# The OpenBLAS kernel is pinned, as in .ci/run: results are bitwise reproducible for one kernel only.
OPENBLAS_CORETYPE=Haswell .build/debug/clbench suite "$suite" --data "$data" --out "results/$suite" --threads 2
bash scripts/update-readme-results.sh
echo "results/$suite updated; run 'swift package --allow-writing-to-package-directory paper-tables' to refresh docs/results.{md,tex}"
