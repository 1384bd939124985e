#!/usr/bin/env bash
# Runs the PyTorch peer benchmarks and `clbench bench` side by side, in one sitting, with the same
# thread count (for each modality PyTorch first, then clbench), and prints the comparison the README
# quotes: samples per second (medians), GFLOP/s, clbench / PyTorch ratios, and the fraction of the
# BLAS ceiling (clbench's own "blas_ceiling" figure for that modality, measured in the same run, and
# the nominal 200 GFLOP/s for 2 cores), plus the tokenizer's throughput on the text benchmark.
#
#   bash scripts/bench-vs-pytorch.sh [--threads N] [--python PYTHON] [--only vit|text]
#                                    [--peer PATH] [--text-peer PATH] [--texts DIR]
#
# vit:  ../shared/tools/torch_vit_lora_bench.py, then clbench bench --backbone vit.
# text: tools/torch_text_lora_bench.py (HF transformers BertModel of the MiniLM folder's config), then
#       clbench bench --backbone text --texts DIR (DIR default ../shared/data/cl-benchmark; the tokenize
#       figure is skipped when it is absent). Both read the length sample tools/text_lengths.json and the
#       config in $CLBENCH_WEIGHTS/all-minilm-l6-v2 (scripts/fetch-minilm.sh).
#
# PyTorch is not a dependency of clbench: give a Python that has torch (and transformers for the text
# peer): `python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch numpy transformers`, then
# --python /tmp/tv/bin/python. Without one, the script says so and exits 2. The raw JSON of every
# tool is kept in $OUT (default: a temp folder).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2
peer=../shared/tools/torch_vit_lora_bench.py
text_peer=tools/torch_text_lora_bench.py
texts=../shared/data/cl-benchmark
only=
python=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --peer) peer=$2; shift 2 ;;
    --text-peer) text_peer=$2; shift 2 ;;
    --texts) texts=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    *) echo "bench-vs-pytorch: unknown argument '$1' (expected --threads N, --python PYTHON, --only vit|text, --peer PATH, --text-peer PATH, --texts DIR)" >&2; exit 2 ;;
  esac
done
case "$only" in ""|vit|text) ;; *) echo "bench-vs-pytorch: --only takes vit or text, got '$only'" >&2; exit 2 ;; esac
modalities="vit text"; [ -n "$only" ] && modalities=$only
for m in $modalities; do
  p=$peer; [ "$m" = text ] && p=$text_peer
  [ -f "$p" ] || { echo "bench-vs-pytorch: peer script '$p' not found (--peer / --text-peer PATH)" >&2; exit 2; }
done
"$python" -c "import torch" 2>/dev/null || {
  echo "bench-vs-pytorch: '$python' cannot import torch; pass --python with a Python that has it" >&2; exit 2; }
case " $modalities " in *" text "*)
  "$python" -c "import transformers" 2>/dev/null || {
    echo "bench-vs-pytorch: '$python' cannot import transformers (the text peer needs it); pass --python with one that has it, or --only vit" >&2; exit 2; } ;;
esac
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
swift build -c release --product clbench >/dev/null
echo "machine: $(uptime)"
for m in $modalities; do
  if [ "$m" = vit ]; then
    "$python" "$peer" --threads "$threads" | tail -n 1 > "$out/pytorch-vit.json"
    .build/release/clbench bench --backbone vit --threads "$threads" --json > "$out/clbench-vit.json"
  else
    "$python" "$text_peer" --threads "$threads" | tail -n 1 > "$out/pytorch-text.json"
    extra=(); [ -d "$texts" ] && extra=(--texts "$texts")
    .build/release/clbench bench --backbone text --threads "$threads" --json "${extra[@]}" > "$out/clbench-text.json"
  fi
done
python3 - "$out" $modalities <<'PYEOF'
import json, os, sys
out, modalities = sys.argv[1], sys.argv[2:]
rows, notes = [], []
for m in modalities:
    torch = json.load(open(os.path.join(out, f"pytorch-{m}.json")))
    figs = {}
    for line in open(os.path.join(out, f"clbench-{m}.json")):
        if line.strip():
            f = json.loads(line); figs[f["figure"]] = f
    tr, inf, ceil = figs["train"], figs["infer"], figs["blas_ceiling"]
    c = ceil["blas_ceiling_gflops_median"]
    unit = "img/s" if m == "vit" else "texts/s"
    if not rows:
        notes.append(f"torch {torch['torch']}, {torch['threads']} threads; clbench BLAS kernel {tr.get('blas_kernel', '?')}, {tr['threads']} threads")
    for name, key, f in (("training", "train", tr), ("inference", "infer", inf)):
        t_ips, t_gf = torch[key + "_img_per_s_median"], torch[key + "_gflops_median"]
        ips, gf = f[key + "_img_per_s_median"], f[key + "_gflops_median"]
        rows.append(f"| {m} {name} (batch {f[key + '_batch']}), {unit} (GFLOP/s) | {t_ips:.1f} ({t_gf:.0f}) | {ips:.1f} ({gf:.0f}) | "
                    f"{ips / t_ips:.2f}x | {100 * gf / c:.0f} % of {c:.0f} | {100 * gf / 200:.0f} % |")
    notes.append(f"{m}: ceiling {c:.0f} GFLOP/s (the step's largest GEMM, {ceil['gemm_m']}x{ceil['gemm_n']}x{ceil['gemm_k']}, as the model runs it); "
                 f"peak RSS: train {tr['peak_rss_mib']:.0f} MiB, after inference {inf['peak_rss_mib']:.0f} MiB")
    if m == "text":
        notes.append(f"text: real / padded tokens per batch: training {tr['train_real_tokens_per_batch']:.0f} / {tr['train_padded_tokens_per_batch']:.0f}, "
                     f"inference {inf['infer_real_tokens_per_batch']:.0f} / {inf['infer_padded_tokens_per_batch']:.0f} (FLOPs count real tokens)")
        if "tokenize" in figs:
            t = figs["tokenize"]
            notes.append(f"text: tokenizer {t['texts_per_s_median']:.0f} texts/s ({t['texts']} texts, max length {t['max_length']}, median {t['tokenize_s_median']:.2f} s)")
print(notes[0])
print()
print("| medians | PyTorch | clbench | clbench / PyTorch | clbench, % of measured ceiling (GFLOP/s) | clbench, % of 200 GFLOP/s |")
print("|---|---|---|---|---|---|")
for r in rows: print(r)
print()
for n in notes[1:]: print(n)
PYEOF
echo "raw figures: $out" >&2
