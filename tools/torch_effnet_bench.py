#!/usr/bin/env python3
"""Peer measurement for `clbench bench --backbone effnet`: the same frozen EfficientNet-Lite0 + LoRA
training step and inference in PyTorch, with `efficientnet_lite_pytorch` 0.1.0's network (eval mode:
batch norm from running statistics; random weights: speed does not depend on them).
Run on the same machine, right before or after `clbench bench --backbone effnet`, same threads and size:
    python3 tools/torch_effnet_bench.py --threads 2 --image 112     (prints one JSON line)
LoRA of rank 8 (alpha = rank) on every 1x1 projection conv and the head conv, as a low-rank 1x1 conv
pair whose output is added after the batch norm of that conv (clbench
adapts the BN-folded map: the same
function class, the same FLOPs). Only LoRA and the linear head (1280 -> classes) train; AdamW.
Times one training step (forward, cross-entropy, backward, AdamW) at --train-batch and inference at
--infer-batch, median over --steps after warm-up."""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from efficientnet_lite_pytorch.model import EfficientNet

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--image", type=int, default=112)
p.add_argument("--train-batch", type=int, default=64)
p.add_argument("--infer-batch", type=int, default=256)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--rank", type=int, default=8)
p.add_argument("--classes", type=int, default=100)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)


class LoRA(nn.Module):
    """y = bn(conv(x)) + B(A(x)) for a frozen 1x1 conv + its batch norm."""
    def __init__(self, conv, bn, r):
        super().__init__()
        self.conv, self.bn = conv, bn
        self.A = nn.Conv2d(conv.in_channels, r, 1, bias=False)
        self.B = nn.Conv2d(r, conv.out_channels, 1, bias=False)
        nn.init.zeros_(self.B.weight)

    def forward(self, x):
        return self.bn(self.conv(x)) + self.B(self.A(x))


model = EfficientNet.from_name("efficientnet-lite0", image_size=a.image).eval()
for q in model.parameters():
    q.requires_grad = False
lora = []


def blk_forward(b):
    proj = LoRA(b._project_conv, b._bn2, a.rank)
    lora.extend([proj.A.weight, proj.B.weight])

    def f(inputs, drop_connect_rate=None):
        x = inputs
        if b._block_args.expand_ratio != 1:
            x = b._swish(b._bn0(b._expand_conv(inputs)))
        x = b._swish(b._bn1(b._depthwise_conv(x)))
        x = proj(x)
        ba = b._block_args
        if b.id_skip and ba.stride == 1 and ba.input_filters == ba.output_filters:
            x = x + inputs
        return x
    return f


for b in model._blocks:
    b.forward = blk_forward(b)
head_lora = LoRA(model._conv_head, model._bn1, a.rank)
lora.extend([head_lora.A.weight, head_lora.B.weight])
fc = nn.Linear(1280, a.classes)


def features(x):
    x = model._swish(model._bn0(model._conv_stem(x)))
    for b in model._blocks:
        x = b(x)
    return model._swish(head_lora(x)).mean((2, 3))


opt = torch.optim.AdamW(lora + list(fc.parameters()), lr=1e-3, weight_decay=0.01)
x = torch.randn(a.train_batch, 3, a.image, a.image)
y = torch.randint(0, a.classes, (a.train_batch,))


def step():
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(fc(features(x)), y).backward()
    opt.step()


def timed(n, body):
    out = []
    for _ in range(n):
        t = time.perf_counter(); body(); out.append((time.perf_counter() - t) * 1000)
    return out


for _ in range(3):
    step()
train = timed(a.steps, step)
xi = torch.randn(a.infer_batch, 3, a.image, a.image)


def infer():
    with torch.no_grad():
        fc(features(xi))


infer()
inf = timed(max(5, a.steps // 2), infer)
tm, im = statistics.median(train), statistics.median(inf)
print(json.dumps(dict(torch=torch.__version__, threads=a.threads, image=a.image, train_batch=a.train_batch, infer_batch=a.infer_batch,
                      train_ms_median=round(tm, 1), train_img_per_s=round(a.train_batch / tm * 1000, 1),
                      infer_ms_median=round(im, 1), infer_img_per_s=round(a.infer_batch / im * 1000, 1))))
