"""Benchmark: decoder word extraction on CPU against its matmul-bound limit, and peak RSS (SPEC §4 v3).

    python tests/bench/decoder_extract.py [--words 20000] [--rounds 3] [--naive-words 50] [--threads N]
    python tests/bench/decoder_extract.py --tiny          # a seconds-long check that the script runs
    python tests/bench/decoder_extract.py --device cuda --peak-tflops 989   # a GPU: bf16, vs the card's roofline

The model is a random-weight decoder of Qwen2.5-0.5B's shape (24 layers, hidden 896, GQA with
14 query and 2 key/value heads, intermediate 4864, SwiGLU) with its vocabulary shrunk to a
byte-level BPE trained here on the benchmark's own words (so the embedding table is small and
token counts are realistic), saved with ``save_pretrained`` and loaded through alignkit's
real loading code. Everything is measured in one run, on the same machine, in rounds:

- FLOPs per word, from the model shape and the real tokenised lengths: per layer per token
  ``2*(H*H + 2*H*KV + H*H + 3*H*FF)`` for the Q, K, V, O and gate/up/down projections plus
  ``2*2*len*H`` for attention (QK^T and PV); norms, RoPE, SiLU and softmax are not counted;
- the fp32 GEMM rate: the model's own projection shapes (random weights, distinct per layer)
  over as many tokens as the words have, with torch's intra-op threads and as one
  single-threaded stream per core (how alignkit's CPU workers run); the best is the reference;
- limit words/s = GEMM FLOP/s / FLOPs per word;
- words/s of (a) one word per forward (as MEXA extracts; a subset of the words), (b) padded
  transformers batches of 256 (``output_hidden_states=True``), (c) alignkit's
  ``word_vectors`` (all layers, no cache), each as a ratio of the limit;
- peak RSS of a fresh process that only loads the model and extracts every word at all
  L + 1 layers, against weights + the vectors kept (layers x words x hidden x 4 bytes) + 1 GB.

With ``--device cuda`` the model runs in bf16 (alignkit's GPU default; pooling stays fp32),
the GEMM rate is measured with bf16 matmuls on the card, and tokens/s and the achieved
GEMM FLOP/s are also printed against ``--peak-tflops`` (the card's dense bf16 peak, from its
data sheet); peak GPU memory replaces the RSS check. Not yet run on a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

QWEN05B = dict(layers=24, hidden=896, heads=14, kv_heads=2, ff=4864)
TINY = dict(layers=2, hidden=64, heads=4, kv_heads=2, ff=128)


def bench_words(n: int) -> list[str]:
    """``n`` distinct real words from several languages (wordfreq), else synthetic ones."""
    try:
        from wordfreq import top_n_list

        words: dict[str, None] = {}
        langs = ["en", "tr", "de", "es", "fr", "it", "pt", "nl", "pl", "ru", "sv", "fi"]
        per = n // len(langs) + 50
        for lang in langs:
            for w in top_n_list(lang, per * 4)[per:]:
                if w.strip():
                    words.setdefault(w)
        out = list(words)[:n]
        if len(out) == n:
            return out
    except Exception:  # wordfreq missing or a language without data: synthetic words
        pass
    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyzäöüçş")
    return list(dict.fromkeys("".join(rng.choice(letters, rng.integers(3, 11))) for _ in range(n * 2)))[:n]


def build_model(path: Path, words: list[str], shape: dict, vocab: int) -> None:
    """Train a BPE on ``words`` and save a random Qwen2 model of ``shape`` with it at ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2Model

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(words, trainer=trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    cfg = Qwen2Config(vocab_size=len(fast), hidden_size=shape["hidden"], intermediate_size=shape["ff"],
                      num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                      num_key_value_heads=shape["kv_heads"], max_position_embeddings=512,
                      eos_token_id=fast.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    Qwen2Model(cfg).save_pretrained(path)
    fast.save_pretrained(path)


def flops_per_word(shape: dict, lengths: np.ndarray) -> float:
    h, ff, layers = shape["hidden"], shape["ff"], shape["layers"]
    kv = h // shape["heads"] * shape["kv_heads"]
    per_token = 2 * (h * h + 2 * h * kv + h * h + 3 * h * ff)
    total = layers * (per_token * lengths.sum() + 4 * h * (lengths.astype(np.float64) ** 2).sum())
    return float(total) / len(lengths)


def gemm_rate(shape: dict, tokens: int, threads: int, device: str = "cpu") -> dict[str, float]:
    """FLOP/s of the model's projection GEMMs over ``tokens`` rows: fp32 on CPU (intra-op and
    per-core streams), bf16 on a GPU (chunks of 2048 and 65536 rows)."""
    from concurrent.futures import ThreadPoolExecutor

    h, ff, layers = shape["hidden"], shape["ff"], shape["layers"]
    kv = h // shape["heads"] * shape["kv_heads"]
    outs = [h, kv, kv, h, ff, ff]
    ins = [h, h, h, h, h, h]
    dt = torch.float32 if device == "cpu" else torch.bfloat16
    ws = [[(torch.randn(i, o) * 0.02).to(device, dt) for i, o in zip(ins + [ff], outs + [h])] for _ in range(layers)]
    chunk = 2048
    flops_per_row = 2 * sum(w.shape[0] * w.shape[1] for w in ws[0]) * layers

    def run(rows: int, chunk: int = chunk) -> None:
        x = torch.randn(min(chunk, rows), h).to(device, dt)
        xf = torch.randn(min(chunk, rows), ff).to(device, dt)
        for start in range(0, rows, chunk):
            for layer in ws:
                for w in layer:
                    torch.matmul(xf if w.shape[0] == ff else x, w)

    out = {}
    if device != "cpu":
        for c in (2048, 65536):
            run(min(tokens, c), c)                      # warm-up
            torch.cuda.synchronize()
            t = time.perf_counter()
            run(tokens, c)
            torch.cuda.synchronize()
            out[f"bf16 chunks of {c}"] = flops_per_row * tokens / (time.perf_counter() - t)
        return out
    torch.set_num_threads(threads)
    t = time.perf_counter()
    run(tokens)
    out["intra-op"] = flops_per_row * tokens / (time.perf_counter() - t)

    def stream(rows: int) -> None:
        torch.set_num_threads(1)
        run(rows)

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(stream, [tokens // threads] * threads))
    out["per-core streams"] = flops_per_row * (tokens // threads * threads) / (time.perf_counter() - t)
    torch.set_num_threads(threads)
    return out


def _sync(dec) -> None:
    if dec.device.type == "cuda":
        torch.cuda.synchronize()


def one_word_per_forward(dec, words: list[str]) -> None:
    with torch.inference_mode():
        for w in words:
            ids = torch.tensor([dec.tokenizer(w)["input_ids"]], device=dec.device)
            dec.model(input_ids=ids, output_hidden_states=True, use_cache=False)
    _sync(dec)


def padded_batches(dec, words: list[str], batch: int = 256) -> None:
    order = sorted(range(len(words)), key=lambda i: len(words[i]))
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            enc = dec.tokenizer([words[i] for i in order[s:s + batch]], padding=True, return_tensors="pt")
            dec.model(input_ids=enc["input_ids"].to(dec.device), attention_mask=enc["attention_mask"].to(dec.device),
                      output_hidden_states=True, use_cache=False)
    _sync(dec)


def rss_child(model: str, words_file: str) -> None:
    """Run in a fresh process: load, extract every word at every layer, print peak RSS (bytes)."""
    from alignkit.inputs.encoders import load_encoder
    from alignkit.vectors.extract import word_vectors

    words = Path(words_file).read_text(encoding="utf-8").splitlines()
    dec = load_encoder(model, device="cpu")
    v = word_vectors(dec, words, layers="all", progress=False)
    print(json.dumps({"peak_rss": peak_rss(), "shape": list(v.shape)}))


def peak_rss() -> int:
    """This process's peak RSS in bytes: VmHWM (of this process's own memory map). Not
    ``ru_maxrss``: Linux carries it across exec, so a child would report its parent's peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--words", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--naive-words", type=int, default=50)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--tiny", action="store_true", help="tiny shapes and 300 words: checks the script runs")
    ap.add_argument("--device", default="cpu", help="cpu (fp32) or cuda (bf16)")
    ap.add_argument("--layers", type=int, default=None, help="override the layer count (a shorter check)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, for the roofline")
    ap.add_argument("--rss-child", nargs=2, metavar=("MODEL", "WORDS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.rss_child:
        return rss_child(*a.rss_child)
    shape = dict(TINY if a.tiny else QWEN05B)
    if a.layers:
        shape["layers"] = a.layers
    n_words = 300 if a.tiny else a.words
    vocab = 600 if a.tiny else a.vocab
    from alignkit.inputs.encoders import load_encoder
    from alignkit.vectors.extract import word_vectors

    words = bench_words(n_words)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "qwen-shape"
        build_model(path, words, shape, vocab)
        dec = load_encoder(str(path), device=a.device)
        lengths = np.array([len(dec.tokenizer(w)["input_ids"]) for w in words])
        fpw = flops_per_word(shape, lengths)
        weights = sum(p.numel() * p.element_size() for p in dec.model.parameters())
        print(f"model: {shape}, vocab {len(dec.tokenizer)}, weights {weights / 2**20:.0f} MiB; {len(words)} words, "
              f"{lengths.mean():.2f} tokens/word; {fpw / 1e9:.3f} GFLOP/word; {a.threads} threads; "
              f"torch {torch.__version__}")
        rows = []
        for r in range(a.rounds):
            rates = gemm_rate(shape, int(lengths.sum()), a.threads, a.device)
            best = max(rates.values())
            limit = best / fpw
            t = time.perf_counter()
            one_word_per_forward(dec, words[:a.naive_words])
            naive = a.naive_words / (time.perf_counter() - t)
            t = time.perf_counter()
            padded_batches(dec, words)
            padded = len(words) / (time.perf_counter() - t)
            t = time.perf_counter()
            word_vectors(dec, words, layers="all", progress=False)
            _sync(dec)
            ours = len(words) / (time.perf_counter() - t)
            if a.device != "cpu":
                achieved = ours * fpw
                peak = f" = {achieved / (a.peak_tflops * 1e12):.2f} of the {a.peak_tflops} TFLOP/s peak" \
                    if a.peak_tflops else ""
                print(f"round {r}: alignkit {ours * lengths.mean():.0f} tokens/s, {achieved / 1e12:.2f} TFLOP/s "
                      f"achieved{peak}; peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
            rows.append((limit, naive, padded, ours))
            print(f"round {r}: GEMM " + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in rates.items()) +
                  f" GFLOP/s -> limit {limit:.1f} words/s; one word/forward {naive:.2f} ({naive / limit:.2f}), "
                  f"padded batches of 256 {padded:.1f} ({padded / limit:.2f}), alignkit {ours:.1f} "
                  f"({ours / limit:.2f} of the limit)")
        med = np.median(np.array(rows), axis=0)
        print(f"median: limit {med[0]:.1f} words/s; alignkit {med[3]:.1f} = {med[3] / med[0]:.2f} of the limit; "
              f"padded {med[2] / med[0]:.2f}; one word/forward {med[1] / med[0]:.3f}")
        if a.device != "cpu":
            return
        del dec
        words_file = Path(tmp) / "words.txt"
        words_file.write_text("\n".join(words), encoding="utf-8")
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(path), str(words_file)],
                             capture_output=True, text=True, check=True, env={**os.environ, "ALIGNKIT_CACHE": tmp})
        child = json.loads(out.stdout.strip().splitlines()[-1])
        kept = (shape["layers"] + 1) * len(words) * shape["hidden"] * 4
        budget = weights + kept + 2**30
        print(f"peak RSS {child['peak_rss'] / 2**20:.0f} MiB for vectors {child['shape']}; budget = weights "
              f"{weights / 2**20:.0f} + vectors {kept / 2**20:.0f} + 1024 MiB = {budget / 2**20:.0f} MiB -> "
              f"{'within' if child['peak_rss'] <= budget else 'OVER'} budget")


if __name__ == "__main__":
    main()
