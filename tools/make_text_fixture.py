"""Fixtures for the text transformer (BERT front end + shared core), from HF transformers and
sentence-transformers. Run with a Python that has torch, transformers, sentence-transformers,
safetensors (a venv; never a build or test dependency):

    python tools/make_text_fixture.py [--minilm DIR]

Writes under Tests/CLModelsTests/Fixtures/:
  bert-tiny/            a random tiny BertModel saved as a sentence-transformers folder (config.json,
                        model.safetensors with HF names, modules.json, 1_Pooling/config.json), plus
                        io.safetensors: ids and lengths of a padded batch (as F32: ids < 2^24 are exact),
                        last_hidden_state [B, L, d], mean-pooled [B, d] and normalised embeddings [B, d]
                        computed by HF BertModel and sentence-transformers' Pooling + Normalize.
  minilm-io.safetensors the same outputs of all-MiniLM-L6-v2 (DIR, default
                        ~/.cache/clbench/weights/all-minilm-l6-v2, made by scripts/fetch-minilm.sh) on the
                        texts of minilm-texts.json, tokenised by the folder's own tokenizer (HF tokenizers),
                        max length 128, padded to the batch's longest text.
Padded positions of last_hidden_state are HF's values and mean nothing; tests compare real positions.
"""
import argparse, json, os
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel
from sentence_transformers import SentenceTransformer, models

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "CLModelsTests", "Fixtures")

TEXTS = [
    "A quiet film about grief that earns every one of its tears.",
    "What is the capital of Australia?",
    "Stocks rallied on Tuesday after the central bank held rates steady, lifting technology shares.",
    "no",
    "The premise entails the hypothesis: a man is playing a guitar on stage.",
    "Café owners in Zürich report a naïve surge in demand — 50% higher than 2019!",
]


def outputs(model, ids, mask):
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).float()
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)   # sentence-transformers' mean pooling
    return hidden, pooled, torch.nn.functional.normalize(pooled, p=2, dim=1)


def tiny():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                     max_position_embeddings=40, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12)
    model = BertModel(cfg, add_pooling_layer=True).eval()
    with torch.no_grad():   # larger than BERT's N(0, 0.02) init so every layer visibly matters
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.add_(0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    folder = os.path.join(OUT, "bert-tiny")
    os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    with open(os.path.join(folder, "modules.json"), "w") as f:
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                   {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}], f, indent=2)
    with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
                   "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, f, indent=2)
    g = torch.Generator().manual_seed(1)
    lengths = [9, 3, 14, 1 + 1, 11]
    L = max(lengths)
    ids = torch.zeros(len(lengths), L, dtype=torch.long)
    mask = torch.zeros(len(lengths), L, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, 0] = 2                                     # a "[CLS]"
        ids[b, 1:n - 1] = torch.randint(5, 97, (n - 2,), generator=g)
        ids[b, n - 1] = 3                                 # a "[SEP]"
        mask[b, :n] = 1
    hidden, pooled, normed = outputs(model, ids, mask)
    save_file({"ids": ids.float(), "lengths": torch.tensor(lengths, dtype=torch.float32),
               "last_hidden_state": hidden.contiguous(), "pooled": pooled.contiguous(), "embedding": normed.contiguous()},
              os.path.join(folder, "io.safetensors"))


def minilm(folder):
    st = SentenceTransformer(folder, device="cpu")
    st.max_seq_length = 128
    features = st.tokenize(TEXTS)
    ids, mask = features["input_ids"], features["attention_mask"]
    bert = st[0].auto_model.eval()
    hidden, pooled, normed = outputs(bert, ids, mask)
    # sentence-transformers' own end-to-end embedding must be what we computed by hand.
    ref = torch.tensor(st.encode(TEXTS, batch_size=len(TEXTS), convert_to_numpy=True))
    assert torch.allclose(ref, normed, atol=1e-6), (ref - normed).abs().max()
    with open(os.path.join(OUT, "minilm-texts.json"), "w") as f:
        json.dump(TEXTS, f, indent=2, ensure_ascii=False)
    save_file({"ids": ids.float(), "lengths": mask.sum(1).float(), "last_hidden_state": hidden.contiguous(),
               "pooled": pooled.contiguous(), "embedding": normed.contiguous()}, os.path.join(OUT, "minilm-io.safetensors"))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm", default=os.path.expanduser("~/.cache/clbench/weights/all-minilm-l6-v2"))
    a = ap.parse_args()
    tiny()
    minilm(a.minilm)
    print("fixtures written to", os.path.normpath(OUT))
