#!/usr/bin/env bash
# Runs the PyTorch peer benchmark and `clbench bench` side by side, in one sitting, with the same
# thread count (PyTorch first), and prints the comparison the README quotes: images per second
# (medians), GFLOP/s, clbench / PyTorch ratios, and the fraction of the BLAS ceiling
# (clbench's own "blas_ceiling" figure, measured in the same run, and the issue's nominal
# 200 GFLOP/s for 2 cores).
#
#   bash scripts/bench-vs-pytorch.sh [--threads N] [--peer PATH] [--python PYTHON]
#
# PyTorch is not a dependency of clbench: give a Python that has it (`python3 -m venv /tmp/tv &&
# /tmp/tv/bin/pip install torch numpy`, then --python /tmp/tv/bin/python). Without one, the
# script says so and exits 2. The raw JSON of both tools is kept in $OUT (default: a temp folder).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2
peer=../shared/tools/torch_vit_lora_bench.py
python=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --peer) peer=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    *) echo "bench-vs-pytorch: unknown argument '$1' (expected --threads N, --peer PATH, --python PYTHON)" >&2; exit 2 ;;
  esac
done
[ -f "$peer" ] || { echo "bench-vs-pytorch: peer script '$peer' not found (--peer PATH)" >&2; exit 2; }
"$python" -c "import torch" 2>/dev/null || {
  echo "bench-vs-pytorch: '$python' cannot import torch; pass --python with a Python that has it" >&2; exit 2; }
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
swift build -c release --product clbench >/dev/null
echo "machine: $(uptime)"
"$python" "$peer" --threads "$threads" | tail -n 1 > "$out/pytorch.json"
.build/release/clbench bench --threads "$threads" --json > "$out/clbench.json"
python3 - "$out/pytorch.json" "$out/clbench.json" <<'EOF'
import json, sys
torch = json.load(open(sys.argv[1]))
figs = {}
for line in open(sys.argv[2]):
    line = line.strip()
    if line:
        f = json.loads(line)
        figs[f["figure"]] = f
tr, inf, ceil = figs["train"], figs["infer"], figs["blas_ceiling"]
c = ceil["blas_ceiling_gflops_median"]
print(f"torch {torch['torch']}, {torch['threads']} threads; clbench BLAS kernel {tr.get('blas_kernel', '?')}, {tr['threads']} threads")
print()
print("| | PyTorch | clbench | clbench / PyTorch | clbench, % of measured ceiling | clbench, % of 200 GFLOP/s |")
print("|---|---|---|---|---|---|")
for name, t_ips, t_gf, f in (("training (batch %d)" % tr["train_batch"], torch["train_img_per_s_median"], torch["train_gflops_median"], tr),
                             ("inference (batch %d)" % inf["infer_batch"], torch["infer_img_per_s_median"], torch["infer_gflops_median"], inf)):
    p = f["figure"]
    ips, gf = f[p + "_img_per_s_median"], f[p + "_gflops_median"]
    print(f"| {name}, img/s (GFLOP/s) | {t_ips:.1f} ({t_gf:.0f}) | {ips:.1f} ({gf:.0f}) | {ips / t_ips:.2f}x | {100 * gf / c:.0f} % | {100 * gf / 200:.0f} % |")
print()
print(f"measured ceiling: {c:.0f} GFLOP/s (the step's largest GEMM, {ceil['gemm_m']}x{ceil['gemm_n']}x{ceil['gemm_k']}, as the model runs it); "
      f"peak RSS: train {tr['peak_rss_mib']:.0f} MiB, after inference {inf['peak_rss_mib']:.0f} MiB")
EOF
echo "raw figures: $out" >&2
