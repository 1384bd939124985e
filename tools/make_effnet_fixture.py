#!/usr/bin/env python3
"""Generate the EfficientNet-Lite parity fixtures for the Swift CLModels tests (EfficientNetTests).

Writes, relative to the repo root:

  Tests/CLModelsTests/Fixtures/effnet-tiny/
    model.safetensors  a random EfficientNet-Lite built by `efficientnet_lite_pytorch` 0.1.0
                       (stem 32, blocks r1_k3_s11_e1_i32_o16, r2_k5_s22_e4_i16_o24,
                       r2_k3_s11_e2_i24_o32, head 1280, ReLU6, no SE), its `state_dict` under the
                       package's names, batch-norm statistics randomised so folding is exercised.
                       No stage's first block keeps its width: the package decodes that block's stride
                       as a list ([1]), so its `stride == 1` test fails and it drops the residual
                       TensorFlow's original keeps; Lite0 never has such a block, so nothing depends on it.
    config.json        the architecture in ../shared/weights/efficientnet-lite0/config.json's format.
    io.safetensors     input_S [2,3,S,S] and features_S [2,1280] for S in 32, 33, 17: inputs
                       N(0,1) (already normalised); features = extract_features(x).mean((2, 3)),
                       with the model built for that image size (static TensorFlow padding is
                       computed for it: odd sizes pad differently).
  Tests/CLModelsTests/Fixtures/effnet-lite0-features.safetensors
    features_224 [3,1280], features_112 [3,1280]: pooled extract_features of the real
    ../shared/weights/efficientnet-lite0 (loaded from its safetensors) for 3 images whose normalised
    pixels follow an integer formula the test recomputes exactly (`lite0Image` in the test):
    u = ((n*7 + c*3 + 1) * y * y + (n + 5) * x * 13 + c * 41 + n * 97) % 256, pixel u / 255,
    then (pixel - mean[c]) / std[c] with the config's ImageNet mean and std. Built at that size.
    Skipped (with a message) when ../shared is absent.

Evaluation mode throughout (batch norm from running statistics). Seeded; float32.
Run: /tmp/torchvenv/bin/python tools/make_effnet_fixture.py  (needs torch, safetensors,
efficientnet_lite_pytorch==0.1.0).
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from efficientnet_lite_pytorch.model import EfficientNet
from efficientnet_lite_pytorch.utils import BlockDecoder, efficientnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests", "CLModelsTests", "Fixtures")
SHARED = os.path.join(ROOT, "..", "shared", "weights", "efficientnet-lite0")


def build(blocks, image_size):
    _, gp = efficientnet(image_size=image_size, dropout_rate=0.0, drop_connect_rate=0.0)
    # width/depth None: filters and repeats as written; fix_head_stem off (stem 32, head 1280 are fixed anyway).
    gp = gp._replace(width_coefficient=None, depth_coefficient=None, fix_head_stem=False, relu_fn="relu6")
    return EfficientNet(BlockDecoder.decode(blocks), gp).eval()


def config_json(blocks, image_size):
    stages = []
    for b in BlockDecoder.decode(blocks):
        stages.append({"kernel_size": b.kernel_size, "num_repeat": b.num_repeat, "input_filters": b.input_filters,
                       "output_filters": b.output_filters, "expand_ratio": b.expand_ratio, "stride": b.stride[0],
                       "se_ratio": None, "id_skip": True})
    return {"architecture": "efficientnet-lite-tiny-random", "image_size": image_size, "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225], "activation": "relu6", "padding": "tensorflow same (static, asymmetric on stride 2)",
            "batch_norm_epsilon": 0.001, "width_coefficient": 1.0, "depth_coefficient": 1.0, "stem_filters": 32,
            "head_filters": 1280, "num_classes": 10, "blocks": stages}


def pooled(model, x):
    with torch.no_grad():
        return model.extract_features(x).mean((2, 3)).float().contiguous()


def tiny():
    torch.manual_seed(0)
    blocks = ["r1_k3_s11_e1_i32_o16", "r2_k5_s22_e4_i16_o24", "r2_k3_s11_e2_i24_o32"]
    ref = build(blocks, 32)
    ref._fc = torch.nn.Linear(1280, 10)
    with torch.no_grad():
        for name, t in ref.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if "running_var" in name:
                t.copy_(torch.rand_like(t) * 1.5 + 0.25)
            elif "running_mean" in name or name.endswith("bias"):
                t.copy_(torch.randn_like(t) * 0.2)
            elif "_bn" in name and name.endswith("weight"):
                t.copy_(torch.rand_like(t) + 0.5)
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn_like(t) * (2.0 / fan_in) ** 0.5)
    state = {k: v.contiguous() for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    out = os.path.join(FIX, "effnet-tiny")
    os.makedirs(out, exist_ok=True)
    save_file(state, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config_json(blocks, 32), f, indent=1)
    io = {}
    for s in (32, 33, 17):
        m = build(blocks, s)
        m._fc = torch.nn.Linear(1280, 10)
        m.load_state_dict(ref.state_dict())
        x = torch.randn(2, 3, s, s)
        io[f"input_{s}"] = x.contiguous()
        io[f"features_{s}"] = pooled(m, x)
    save_file(io, os.path.join(out, "io.safetensors"))
    print("wrote", out)


def lite0_image(n, size, mean, std):
    y = torch.arange(size, dtype=torch.int64).view(size, 1)
    x = torch.arange(size, dtype=torch.int64).view(1, size)
    planes = []
    for c in range(3):
        u = ((n * 7 + c * 3 + 1) * y * y + (n + 5) * x * 13 + c * 41 + n * 97) % 256
        planes.append(((u.to(torch.float32) / 255.0) - mean[c]) / std[c])
    return torch.stack(planes)


def lite0():
    if not os.path.isdir(SHARED):
        print("skipped the real-weights fixture: no", SHARED, file=sys.stderr)
        return
    cfg = json.load(open(os.path.join(SHARED, "config.json")))
    weights = load_file(os.path.join(SHARED, "model.safetensors"))
    out = {}
    for s in (224, 112):
        m = EfficientNet.from_name("efficientnet-lite0", image_size=s).eval()
        missing, unexpected = m.load_state_dict(weights, strict=False)
        assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
        x = torch.stack([lite0_image(n, s, cfg["mean"], cfg["std"]) for n in range(3)])
        out[f"features_{s}"] = pooled(m, x)
    path = os.path.join(FIX, "effnet-lite0-features.safetensors")
    save_file(out, path)
    print("wrote", path)


if __name__ == "__main__":
    tiny()
    lite0()
