#!/usr/bin/env bash
# Re-runs the smoke suite (debug build, 2 threads, as CI does) into results/smoke and regenerates the
# tables made from it (README.md's block, docs/results.md, docs/results.tex). For when a change is
# meant to change the numbers: commit the result files with the change, and say why in the message.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${CLBENCH_DATA:-../shared/data}
swift build --product clbench
rm -rf results/smoke
# The OpenBLAS kernel is pinned, as in .ci/run: results are bitwise reproducible for one kernel only.
OPENBLAS_CORETYPE=Haswell .build/debug/clbench suite smoke --data "$data" --out results/smoke --threads 2
bash scripts/update-readme-results.sh
echo "results/smoke updated; run 'swift package --allow-writing-to-package-directory paper-tables' to refresh docs/results.{md,tex}"
