#!/usr/bin/env bash
# The real-Slurm test: starts a one-node Slurm, submits a small suite as a job array of 2 tasks with
# `clbench slurm --submit`, preempts one array task part-way through a cell (`scancel --signal=TERM`,
# what preemption and `--signal=B:TERM@120` before a time limit send), checks that it stops with a
# checkpoint, is requeued and continues from it, waits, checks every cell's result exists, and that
# the report table equals the one of a local run of the same suite. Skips (exit 0, with a message)
# where Slurm cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
clbench=$(pwd)/.build/debug/clbench
[ -x "$clbench" ] || { echo "test-slurm: build first (swift build)"; exit 1; }
work=$(mktemp -d)
trap 'bash scripts/slurm-local.sh stop "$work/slurm" >/dev/null 2>&1 || true' EXIT

if ! bash scripts/slurm-local.sh start "$work/slurm"; then
  echo "test-slurm: SKIPPED: Slurm cannot be installed or started on this machine"
  exit 0
fi
export SLURM_CONF="$work/slurm/slurm.conf"

# finetune's cells take a few seconds each (epochs), so that a cell can be caught part-way.
cat > "$work/tiny.yaml" <<'YAML'
name: slurmtiny
scenarios: [synthetic]
methods: [ncm, finetune]
seeds: [0, 1]
backbone: {scratch: {image_size: 16, patch_size: 4, dim: 16, depth: 1, heads: 2, mlp_dim: 32}}
schedule: {epochs: 60, batch_size: 32, eval_batch_size: 100}
YAML

out=$(mktemp -d)
job=$("$clbench" slurm "$work/tiny.yaml" --out "$out" --shards 2 --cpus-per-task 1 --data "$work" --submit | awk '/submitted job/ {print $3}')
echo "test-slurm: submitted job $job"

# Preempt array task 0 once one of its finetune cells has a checkpoint (`suite --shard 0/2 --list` says so).
preempted=""
for _ in $(seq 1 1200); do
  if "$clbench" suite "$work/tiny.yaml" --shard 0/2 --out "$out" --data "$work" --list 2>/dev/null | grep -q "finetune.*checkpoint after task"; then
    scancel --signal=TERM --batch "${job}_0" && preempted=yes
    break
  fi
  [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
  sleep 0.1
done
[ -n "$preempted" ] || { echo "test-slurm: FAILED: array task 0 finished before a checkpoint could be seen"; cat "$out"/slurm-*.out || true; exit 1; }
echo "test-slurm: sent SIGTERM to array task ${job}_0 part-way through a cell"
for _ in $(seq 1 600); do
  [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
  # A requeued task may wait for a begin time: let it start now.
  for t in $(squeue -h -j "$job" -t PD -o %i 2>/dev/null); do scontrol update jobid="$t" starttime=now >/dev/null 2>&1 || true; done
  sleep 1
done
[ -z "$(squeue -h -j "$job" 2>/dev/null)" ] || { echo "test-slurm: FAILED: job $job still queued or running after 600 s"; squeue -j "$job" || true; exit 1; }
log0=$(ls "$out"/slurm-*_0.out)
grep -q "interrupted by SIGTERM" "$log0" && grep -q "requeueing array task 0" "$log0" \
  || { echo "test-slurm: FAILED: array task 0 did not stop on SIGTERM and requeue itself"; cat "$log0"; exit 1; }
grep -q "restart 1" "$log0" && grep -Eq "checkpoint after task [1-4]/5" "$log0" \
  || { echo "test-slurm: FAILED: the requeued array task did not run again from its checkpoint"; cat "$log0"; exit 1; }
echo "test-slurm: array task 0's log:"
grep -E "starts on|checkpoint|interrupted|requeueing" "$log0" | sed 's/^/  /'
n=$(ls "$out"/*.json.zst 2>/dev/null | wc -l)
[ "$n" -eq 4 ] || { echo "test-slurm: FAILED: $n of 4 result files"; cat "$out"/slurm-*.out || true; exit 1; }
[ -z "$(ls -A "$out" | grep '^\.ckpt-' || true)" ] || { echo "test-slurm: FAILED: checkpoints left behind"; ls -A "$out"; exit 1; }

local_out=$(mktemp -d)
"$clbench" suite "$work/tiny.yaml" --out "$local_out" --data "$work" --threads 1 >/dev/null
"$clbench" report table "$out" > "$work/slurm-table.md"
"$clbench" report table "$local_out" > "$work/local-table.md"
grep -q ncm "$work/slurm-table.md" && grep -q finetune "$work/slurm-table.md" \
  || { echo "test-slurm: FAILED: the report table lists no methods"; cat "$work/slurm-table.md"; exit 1; }
diff "$work/slurm-table.md" "$work/local-table.md" \
  || { echo "test-slurm: FAILED: the Slurm run's report table differs from the local run's"; exit 1; }
# A rerun of the suite on the shared folder finds every cell finished.
rerun=$("$clbench" suite "$work/tiny.yaml" --out "$out" --data "$work" --threads 1)
grep -q "4 cells, 4 already done, 0 to run" <<<"$rerun" \
  || { echo "test-slurm: FAILED: a rerun did not find every cell done"; echo "$rerun"; exit 1; }
echo "test-slurm: passed (4 cells over 2 array tasks, task 0 preempted part-way and requeued; report table equal to a local run)"
