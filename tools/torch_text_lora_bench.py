"""Peer measurement for `clbench bench --backbone text`: the same frozen-MiniLM + LoRA training step and
inference in PyTorch (HF transformers' BertModel). The vision peer is ../shared/tools/torch_vit_lora_bench.py;
this one prints the same JSON keys. Run on the same machine, right before or after clbench, with the
same thread count (needs torch and transformers; prints one JSON line):

    python3 tools/torch_text_lora_bench.py --threads 2 [--config ~/.cache/clbench/weights/all-minilm-l6-v2/config.json]

Model: BertModel built from the MiniLM folder's config.json (hidden 384, 6 layers, 12 heads, intermediate
1536; random weights, dropout off as in clbench's bench), LoRA rank 8 (alpha 8) on the query and value
maps as plain modules (B zero, A random: the vision peer's form), mean pooling over real tokens (the
sentence-transformers pooling clbench's MiniLM uses) and a linear head over 100 classes; only LoRA and
the head train, with AdamW.

Batches: the token lengths of tools/text_lengths.json (made by tools/make_text_lengths.py from the
benchmark's texts), taken `batch` at a time in order, cyclically: step i (warm-up included) uses lengths
[i * batch, (i + 1) * batch) mod N. Random ids, [CLS] first and [SEP] last, right-padded to the batch's
longest sample with the attention mask. Training batch 32, inference batch 128.

FLOPs are counted for real tokens only (the useful work; padded positions are not counted), per
sample of real length n exactly as the vision peer counts its 65 tokens; a step's GFLOP/s is its
batch's FLOPs over its time, and `*_gflops_median` the median over the timed steps.
"""
import argparse, json, math, os, statistics, time
import torch, torch.nn as nn, torch.nn.functional as F
from transformers import BertConfig, BertModel

HERE = os.path.dirname(os.path.abspath(__file__))
p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--config", default=os.path.expanduser("~/.cache/clbench/weights/all-minilm-l6-v2/config.json"))
p.add_argument("--lengths", default=os.path.join(HERE, "text_lengths.json"))
p.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
p.add_argument("--train-batch", type=int, default=32)
p.add_argument("--infer-batch", type=int, default=128)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--rank", type=int, default=8); p.add_argument("--classes", type=int, default=100)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

cfg = BertConfig.from_json_file(a.config)
cfg.hidden_dropout_prob = 0.0; cfg.attention_probs_dropout_prob = 0.0
cfg._attn_implementation = a.attn
bert = BertModel(cfg, add_pooling_layer=False)
D, L, H, M, R, C = cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size, a.rank, a.classes
HD = D // H

class LoRALinear(nn.Module):
    """base(x) + (x A^T) B^T * alpha / r, base frozen."""
    def __init__(s, base):
        super().__init__()
        s.base = base
        s.A = nn.Parameter(torch.randn(R, D) / math.sqrt(D)); s.B = nn.Parameter(torch.zeros(D, R))
        s.scaling = 1.0  # alpha / r with alpha = r
    def forward(s, x):
        return s.base(x) + (x @ s.A.t()) @ s.B.t() * s.scaling

for layer in bert.encoder.layer:
    att = layer.attention.self
    att.query = LoRALinear(att.query); att.value = LoRALinear(att.value)

class Model(nn.Module):
    def __init__(s):
        super().__init__()
        s.bert = bert; s.head = nn.Linear(D, C)
    def forward(s, ids, mask):
        h = s.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        return s.head((h * m).sum(1) / m.sum(1))

model = Model()
for n_, p_ in model.named_parameters():
    p_.requires_grad = n_.split(".")[-1] in ("A", "B") or n_.startswith("head.")
train_params = [p_ for p_ in model.parameters() if p_.requires_grad]
opt = torch.optim.AdamW(train_params, lr=1e-3)

# ---- analytic FLOPs per sample of real length n (GEMMs only; 2 FLOPs per multiply-add) ----
def fwd_flops(n):
    per = (2 * n * D * 3 * D + 2 * n * D * D + 2 * 2 * n * D * M + 2 * 2 * H * n * n * HD + 2 * (2 * n * D * R + 2 * n * R * D))
    return L * per + 2 * D * C
def bwd_flops(n):
    per = 2 * n * D * 3 * D + 2 * n * D * D + 2 * 2 * n * D * M + 4 * 2 * H * n * n * HD + 2 * 4 * (2 * n * D * R)
    first = per - 2 * n * D * 3 * D - 2 * H * n * n * HD - 2 * (2 * n * D * R)
    return (L - 1) * per + first + 2 * D * C

lengths = json.load(open(a.lengths))["lengths"]
g = torch.Generator().manual_seed(0)
def batch(i, b):
    ls = [lengths[(i * b + j) % len(lengths)] for j in range(b)]
    t = max(ls)
    ids = torch.zeros(b, t, dtype=torch.long); mask = torch.zeros(b, t, dtype=torch.long)
    for j, n in enumerate(ls):
        ids[j, :n] = torch.randint(1000, cfg.vocab_size, (n,), generator=g)
        ids[j, 0] = 101; ids[j, n - 1] = 102; mask[j, :n] = 1
    return ids, mask, ls

res = dict(torch=torch.__version__, threads=a.threads, attn=a.attn, backbone="text", lengths_file=os.path.basename(a.lengths),
           lora_params=sum(p_.numel() for n_, p_ in model.named_parameters() if n_.split(".")[-1] in ("A", "B")),
           all_params=sum(p_.numel() for p_ in model.parameters()))

def figure(name, bsz, times, flops, ls_all, pad_all):
    med, best = statistics.median(times), min(times)
    rates = [f / t / 1e9 for f, t in zip(flops, times)]
    res.update({f"{name}_batch": bsz, f"{name}_{'step_' if name == 'train' else ''}ms_median": med * 1e3,
                f"{name}_{'step_' if name == 'train' else ''}ms_best": best * 1e3,
                f"{name}_img_per_s_median": bsz / med, f"{name}_img_per_s_best": bsz / best,
                f"{name}_gflop_per_img": sum(flops) / len(flops) / bsz / 1e9, f"{name}_gflops_median": statistics.median(rates),
                f"{name}_real_tokens_per_batch": sum(ls_all) / len(times), f"{name}_padded_tokens_per_batch": pad_all / len(times)})

# ---- training steps ----
y = torch.randint(0, C, (a.train_batch,), generator=g)
tb = [batch(i, a.train_batch) for i in range(a.warmup + a.steps)]
def step(ids, mask):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(ids, mask), y)
    loss.backward()
    opt.step()
for ids, mask, _ in tb[:a.warmup]: step(ids, mask)
ts, fl, lsa, pad = [], [], [], 0
for ids, mask, ls in tb[a.warmup:]:
    t = time.perf_counter(); step(ids, mask); ts.append(time.perf_counter() - t)
    fl.append(sum(fwd_flops(n) + bwd_flops(n) for n in ls)); lsa += ls; pad += ids.numel()
figure("train", a.train_batch, ts, fl, lsa, pad)
res["train_step_times_ms"] = [round(t * 1e3) for t in ts]

# ---- inference ----
model.eval()
n_inf = max(5, a.steps // 2)
ib = [batch(i, a.infer_batch) for i in range(a.warmup + n_inf)]
with torch.inference_mode():
    for ids, mask, _ in ib[:a.warmup]: model(ids, mask)
    ts, fl, lsa, pad = [], [], [], 0
    for ids, mask, ls in ib[a.warmup:]:
        t = time.perf_counter(); model(ids, mask); ts.append(time.perf_counter() - t)
        fl.append(sum(fwd_flops(n) for n in ls)); lsa += ls; pad += ids.numel()
figure("infer", a.infer_batch, ts, fl, lsa, pad)
res["infer_times_ms"] = [round(t * 1e3) for t in ts]
print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}))
