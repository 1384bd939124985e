#!/usr/bin/env python3
"""Generate the Hugging Face `tokenizers` parity fixture for the Swift WordPieceTokenizer tests.

Reference: all-MiniLM-L6-v2's tokenizer.json (BertNormalizer + BertPreTokenizer + WordPiece +
TemplateProcessing "[CLS] $A [SEP]"), loaded with `tokenizers.Tokenizer.from_file`, padding off.
"At 128" means `enable_truncation(128)` (the pieces are cut, [CLS] and [SEP] kept); "full" means
`no_truncation()`.

The id-list hash (used by both hash fixtures):
    for each record, in order: its id count as a little-endian UInt32, then each id as a
    little-endian UInt32 (ids include [CLS] and [SEP]); SHA-256 over all of those bytes, lower-case
    hex. No ids are stored, only the hash.

What it writes (into Tests/CLDataTests/Fixtures/tokenizer/, relative to the repo root):

  vocab.txt              the model folder's vocab.txt, copied (Apache-2.0), so the tests need no
                         downloaded weights
  edge_cases.json        {"header": {...}, "cases": [{"name", "text", "ids_128", "ids_full"}],
                         "every_scalar": {...}}: hand-picked texts with their ids, and one hash over
                         the full ids of "a" + chr(c) + "b" for every Unicode scalar c
                         (U+0000-U+10FFFF without the surrogates, in order), which checks every
                         scalar's cleaning, CJK spacing, accent stripping, lowercasing and splitting
  cl_benchmark_hashes.json
                         {"header": {...}, "files": [{"path", "records", "sha256_128",
                         "sha256_full"}]}: every <group>/<task>/{train,test}.json under
                         ../shared/data/cl-benchmark (a JSON list of {"label", "sentence"}; the
                         sentence is what is encoded), path relative to that folder, sorted

Run from anywhere, with `tokenizers` installed (the all-MiniLM-L6-v2 folder comes from
scripts/fetch-minilm.sh):
    /tmp/torchvenv/bin/python tools/make_tokenizer_fixture.py [MODEL_FOLDER]
"""
import hashlib
import json
import os
import shutil
import struct
import sys

import tokenizers
from tokenizers import Tokenizer

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(REPO, "Tests", "CLDataTests", "Fixtures", "tokenizer")
BENCHMARK = os.path.join(REPO, "..", "shared", "data", "cl-benchmark")
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/clbench/weights/all-minilm-l6-v2")
MAX_LENGTH = 128

HASH_DEFINITION = (
    "for each record in order: its id count as a little-endian UInt32, then each id ([CLS] and [SEP] "
    "included) as a little-endian UInt32; SHA-256 of all those bytes, lower-case hex"
)

# (name, text). Each exercises one rule of BertNormalizer / BertPreTokenizer / WordPiece.
CASES = [
    ("empty", ""),
    ("only spaces", "   "),
    ("only whitespace of every kind", " \t\n\r\u00a0\u2003\u3000\u202f\u205f\u1680\u2028\u2029"),
    ("plain", "The quick brown fox jumps over the lazy dog."),
    ("mixed case", "HeLLo WoRLD, iPhone McDonald's NASA"),
    ("numbers", "In 2023, 3.14159 and 1,000,000 people paid $42.50 (about 10%) for 7th-place 1st."),
    ("url and email", "See https://example.com/path?q=1&x=y#frag or mail john.doe+tag@example.org"),
    ("apostrophes", "don't can't I'm it's rock 'n' roll O'Neill ’curly’ don’t"),
    ("only punctuation ascii", "!!! ... ?!?"),
    ("only punctuation unicode", "«» ¿¡ — – … ‘’ “” · • § ¶ ※ 〈〉 【】 「」 ！？ ，。"),
    ("accents", "café naïve résumé Ångström façade jalapeño Zoë"),
    ("sharp s and ligatures", "Straße ß ẞ ﬁ ﬂ Œuvre æ ĳ"),
    ("turkish dotted I", "İstanbul IİıiI ışık"),
    ("greek with final sigma", "ΟΔΥΣΣΕΥΣ Ἀθῆναι ἑλληνικά ΐ"),
    ("cyrillic", "Привет, мир! Ёжик й Й"),
    ("arabic", "مرحبا بالعالم، كيف حالك؟ ـــ \u064b\u0650"),
    ("hebrew", "שָׁלוֹם עוֹלָם"),
    ("devanagari", "नमस्ते दुनिया क़ ॐ"),
    ("thai", "สวัสดีชาวโลก ภาษาไทย"),
    ("chinese", "中文字符 我爱北京天安门。"),
    ("japanese", "日本語のテキスト、カタカナとひらがな。"),
    ("korean", "한국어 텍스트입니다"),
    ("cjk extension and compatibility", "\U00020000\U0002a700\U0002b820\U0002b920 \uf900\ufa0d \U0002f800 㐀"),
    ("emoji", "I ❤️ emoji 😀👍🏽🎉 👨‍👩‍👧 🇫🇷🇯🇵 🏳️‍🌈 ☺"),
    ("control characters", "a\u0000b c\u0007d e\u001bf g\u007fh i\u0085j k\u000bl m\u000cn \u001c\u001f"),
    ("zero-width and format", "zero\u200bwidth join\u200dner \ufeffbom soft\u00adhyphen lrm\u200emark \u2060word \u2028"),
    ("replacement character", "bad \ufffd byte\ufffd\ufffd"),
    ("private use", "a\ue000b \U000f0000 c\U0010fffdd"),
    ("tabs and newlines", "line one\nline two\r\nline\tthree\t\ttabs"),
    ("non-breaking and other spaces", "non\u00a0breaking thin\u2009space em\u2003space ideographic\u3000space narrow\u202fno"),
    ("combining sequences", "e\u0301 a\u0308\u0301 o\u0323\u0302 n\u0303 Z\u0335\u0317 \u0301alone x\u20dd"),
    ("canonical reordering", "a\u0323\u0301 a\u0301\u0323 q\u0307\u0323"),
    ("hangul jamo and syllables", "\u1100\u1161\u11a8 각 \uac00\ud7a3"),
    ("unicode 9+ punctuation and marks", "a\u2e4eb a\u2e3ab \u166d \U000111c9 \u1734 \u1885 \ua9bd \U00011938 \u1cd0"),
    ("fullwidth and superscripts", "ＡＢＣ ａｂｃ １２３ x² H₂O ½ ™ ℃ Ⅻ"),
    ("math and symbols", "∀x∈ℝ: x²≥0 ⇒ √x ≈ ∞ ± ≠ ∑ ∫ € £ ¥ © ®"),
    ("special tokens in text", "hello [MASK] world [mask] x[SEP]y [CLS][PAD] [UNK]! [[SEP]] [MASK"),
    ("word of 100 characters", "a" * 100),
    ("word of 101 characters", "b" * 101),
    ("long word with accents", "é" * 99 + " " + "é" * 101),
    ("very long word", "pneumonoultramicroscopicsilicovolcanoconiosis" * 3 + " " + "x" * 250),
    ("unknown piece inside a word", "abc\u0e01xyz hello\U0001f600world"),
    ("repeated punctuation in word", "well...really?!no--way"),
    ("text longer than 128 pieces",
     "The committee reviewed the proposal in detail, discussing its budget, timeline and staffing. " * 8
     + "Unbelievably, antidisestablishmentarianism resurfaced; café owners protested."),
    ("special token across the truncation boundary", "word " * 125 + "[MASK] tail words here"),
]

EVERY_SCALAR_TEMPLATE = "a{c}b"


def id_hash(id_lists):
    h = hashlib.sha256()
    for ids in id_lists:
        h.update(struct.pack("<I", len(ids)))
        h.update(struct.pack("<%dI" % len(ids), *ids))
    return h.hexdigest()


def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def encode_all(tok, texts, max_length):
    if max_length is None:
        tok.no_truncation()
    else:
        tok.enable_truncation(max_length)
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=True)]


def write_json(name, obj):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=True, indent=1)
        f.write("\n")


def main():
    tokenizer_json = os.path.join(MODEL, "tokenizer.json")
    tok = Tokenizer.from_file(tokenizer_json)
    tok.no_padding()
    os.makedirs(OUT, exist_ok=True)
    shutil.copyfile(os.path.join(MODEL, "vocab.txt"), os.path.join(OUT, "vocab.txt"))
    header = {
        "generator": "tools/make_tokenizer_fixture.py",
        "tokenizers_version": tokenizers.__version__,
        "tokenizer_json_sha256": file_sha256(tokenizer_json),
        "vocab_txt_sha256": file_sha256(os.path.join(MODEL, "vocab.txt")),
        "max_length": MAX_LENGTH,
        "hash": HASH_DEFINITION,
    }

    texts = [text for _, text in CASES]
    ids_128 = encode_all(tok, texts, MAX_LENGTH)
    ids_full = encode_all(tok, texts, None)
    cases = [{"name": name, "text": text, "ids_128": a, "ids_full": b}
             for (name, text), a, b in zip(CASES, ids_128, ids_full)]
    assert any(len(ids) > MAX_LENGTH for ids in ids_full), "no case is longer than the max length"

    scalars = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    scalar_texts = [EVERY_SCALAR_TEMPLATE.format(c=chr(c)) for c in scalars]
    every_scalar = {
        "template": EVERY_SCALAR_TEMPLATE,
        "scalars": "U+0000-U+10FFFF without U+D800-U+DFFF, in order",
        "count": len(scalar_texts),
        "sha256_full": id_hash(encode_all(tok, scalar_texts, None)),
    }
    write_json("edge_cases.json", {"header": header, "cases": cases, "every_scalar": every_scalar})

    files = []
    for group in sorted(os.listdir(BENCHMARK)):
        group_dir = os.path.join(BENCHMARK, group)
        if not os.path.isdir(group_dir):
            continue
        for task in sorted(os.listdir(group_dir)):
            for split in ("train", "test"):
                path = os.path.join(group_dir, task, split + ".json")
                if not os.path.exists(path):
                    continue
                with open(path, encoding="utf-8") as f:
                    sentences = [record["sentence"] for record in json.load(f)]
                files.append({
                    "path": f"{group}/{task}/{split}.json",
                    "records": len(sentences),
                    "sha256_128": id_hash(encode_all(tok, sentences, MAX_LENGTH)),
                    "sha256_full": id_hash(encode_all(tok, sentences, None)),
                })
                print(files[-1]["path"], files[-1]["records"], file=sys.stderr)
    write_json("cl_benchmark_hashes.json", {"header": dict(header, source="../shared/data/cl-benchmark"), "files": files})


if __name__ == "__main__":
    main()
