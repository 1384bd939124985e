"""The token-length sample both text benchmarks run on: `clbench bench --backbone text` and its PyTorch
peer (tools/torch_text_lora_bench.py) build their batches from tools/text_lengths.json, so both time
the same shapes. Run with a Python that has `tokenizers` (a venv; never a build or test dependency):

    python tools/make_text_lengths.py [--data ../shared/data/cl-benchmark] [--minilm DIR]

For each of the 15 tasks of O-LoRA's benchmark (its CL_Benchmark layout under --data), 128 records
of the train split are drawn uniformly without replacement (Python's random.Random(0), tasks in
sorted order), tokenised by all-MiniLM-L6-v2's own tokenizer.json ([CLS] ... [SEP], max length 128,
as the text suites tokenise), and the 1,920 lengths are shuffled together (same generator). A
benchmark batch is the next `batch` lengths of that list, cyclically, so every batch mixes tasks and
is padded to its longest sample. (A real run's batches come from one task at a time; mixed batches
are padded somewhat more, and make every step of the benchmark the same distribution.)
"""
import argparse, json, os, random
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
p = argparse.ArgumentParser()
p.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data", "cl-benchmark"))
p.add_argument("--minilm", default=os.path.expanduser("~/.cache/clbench/weights/all-minilm-l6-v2"))
p.add_argument("--per-task", type=int, default=128)
p.add_argument("--max-length", type=int, default=128)
p.add_argument("--out", default=os.path.join(HERE, "text_lengths.json"))
a = p.parse_args()

tok = Tokenizer.from_file(os.path.join(a.minilm, "tokenizer.json"))
tok.enable_truncation(max_length=a.max_length)
tok.no_padding()
rng = random.Random(0)
tasks = []
for group in sorted(os.listdir(a.data)):
    gdir = os.path.join(a.data, group)
    if not os.path.isdir(gdir):
        continue
    for task in sorted(os.listdir(gdir)):
        if os.path.exists(os.path.join(gdir, task, "train.json")):
            tasks.append((task, os.path.join(gdir, task)))
tasks.sort()
lengths, per_task = [], {}
for task, folder in tasks:
    labels = set(json.load(open(os.path.join(folder, "labels.json"))))
    texts = [r["sentence"] for r in json.load(open(os.path.join(folder, "train.json"))) if r["label"] in labels]
    chosen = rng.sample(range(len(texts)), a.per_task)
    ls = [len(e.ids) for e in tok.encode_batch([texts[i] for i in chosen])]
    per_task[task] = round(sum(ls) / len(ls), 1)
    lengths += ls
rng.shuffle(lengths)
out = {
    "about": "token lengths ([CLS] ... [SEP], all-MiniLM-L6-v2's tokenizer, max 128) of 128 train records per task of "
             "O-LoRA's benchmark, shuffled; made by tools/make_text_lengths.py",
    "max_length": a.max_length, "tasks": len(tasks), "per_task": a.per_task, "mean_length_per_task": per_task,
    "mean_length": round(sum(lengths) / len(lengths), 2), "lengths": lengths,
}
with open(a.out, "w") as f:
    json.dump(out, f, indent=None, separators=(", ", ": "))
    f.write("\n")
print(f"{len(lengths)} lengths from {len(tasks)} tasks, mean {out['mean_length']}, written to {a.out}")
