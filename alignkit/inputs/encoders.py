"""Load any HuggingFace encoder (local directory, hub id, or the bundled default) with its tokenizer.

>>> enc = load_encoder("bundled:multilingual-e5-small")          # doctest: +SKIP
>>> enc.num_layers, enc.hidden_size, enc.query_prefix             # doctest: +SKIP
(12, 384, 'query: ')

Everything about a checkpoint the rest of alignkit needs lives on :class:`Encoder`:
the model (eval mode, on its device), a fast tokenizer, layer count, hidden size, a stable
fingerprint (hash of config + weight files) and model-specific input prefixes.

Vector extraction (:mod:`alignkit.vectors`) uses only the narrow :class:`EncoderProtocol`
(shape, fingerprint, ``tokenize``, per-layer ``hidden_states``); ``Encoder`` satisfies it, and
its ``hidden_states`` runs a fused CPU forward registered for the model_type in
:data:`alignkit.inputs.fused.FUSED_FORWARDS` when there is one, else transformers' forward.
A checkpoint whose config builds a causal LM loads as a
:class:`alignkit.inputs.decoders.Decoder` instead (same protocol, per-layer pooling hooks).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

from alignkit.inputs.bundled import BUNDLED_ID, BUNDLED_PREFIX, NORMALIZER_FILE, ensure_bundled_model
from alignkit.inputs.checkpoint_files import (  # noqa: F401
    LazyCheckpoint, hub_snapshot_dir, model_fingerprint, pick_device)
from alignkit.errors import AlignkitError

DEFAULT_MODEL = BUNDLED_ID

# model_type values of encoder-only architectures alignkit knows how to read.
ENCODER_TYPES = {
    "bert", "xlm-roberta", "roberta", "distilbert", "camembert", "electra", "deberta",
    "deberta-v2", "mpnet", "xlm", "albert", "luke", "rembert", "xlm-roberta-xl", "ernie",
    "mobilebert", "squeezebert", "funnel", "roformer", "nomic_bert", "modernbert", "new",
}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
# RoBERTa-style models number positions after padding_idx: two fewer usable positions.
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "xlm-roberta-xl")


@runtime_checkable
class EncoderProtocol(Protocol):
    """What vector extraction needs from an encoder, and all it may touch (SPEC §2).

    ``num_layers`` L (transformer layers; hidden states are 0..L, 0 = embeddings),
    ``hidden_size`` (dim), ``fingerprint`` (cache key of the weights), ``device``/``dtype``
    of the forward, ``query_prefix`` (sentence input prefix), ``max_length`` (longest token
    sequence, specials included) and ``normalize`` (the text normaliser ``tokenize`` applies
    first, so offsets refer to its output; None when there is none).
    """

    name: str
    fingerprint: str
    num_layers: int
    hidden_size: int
    device: Any
    dtype: Any
    query_prefix: str
    normalize: Callable[[str], str] | None

    @property
    def max_length(self) -> int: ...

    def tokenize(self, texts: list[str], **kwargs) -> Any:
        """HF fast-tokenizer call on ``texts`` (same keyword arguments and output)."""

    def hidden_states(self, input_ids: Any, attention_mask: Any = None, last_layer: int | None = None,
                      keep: Any = None) -> Iterator[tuple[int, Any]]:
        """Yield ``(layer, hidden [B, n_l, dim])`` for layers 0..``last_layer`` of ``input_ids [B, n]``.

        ``n_l`` is ``n``, except that for the last layer an implementation may return only the
        positions in ``keep`` (a LongTensor, ``n_l = len(keep)``). Run under
        ``torch.inference_mode``; the states are on ``device``.
        """


@dataclass
class Encoder:
    """A loaded encoder and what alignkit needs to know about it."""

    model: Any
    tokenizer: Any
    name: str
    path: Path
    fingerprint: str
    num_layers: int
    hidden_size: int
    device: Any
    dtype: Any
    query_prefix: str = ""
    normalize: Callable[[str], str] | None = field(default=None, repr=False)
    _prenormalized_tokenizer: Any = field(default=None, repr=False)

    def tokenize(self, texts: list[str], **kwargs):
        """Tokenise ``texts`` exactly as ``self.tokenizer`` would, faster where possible.

        For the bundled model the Unicode map is applied with ``str.translate`` and a copy of
        the tokenizer without its (slow, 2700-step) normaliser does the rest; the test suite
        pins this to token-for-token parity with ``self.tokenizer``. Offsets, when requested,
        refer to the normalised text.
        """
        if self.normalize is None:
            return self.tokenizer(texts, **kwargs)
        if self._prenormalized_tokenizer is None:
            import copy

            from tokenizers import normalizers

            tok = copy.deepcopy(self.tokenizer)
            tok.backend_tokenizer.normalizer = normalizers.Sequence([])
            self._prenormalized_tokenizer = tok
        return self._prenormalized_tokenizer([self.normalize(t) for t in texts], **kwargs)

    @property
    def max_length(self) -> int:
        """Longest token sequence (specials included) the model accepts."""
        cfg = self.model.config
        n = int(getattr(cfg, "max_position_embeddings", 512) or 512)
        if getattr(cfg, "model_type", "") in _OFFSET_POSITIONS:
            n -= 2  # RoBERTa-style position ids start after padding_idx
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < n:
            n = tok_max
        return n

    def hidden_states(self, input_ids, attention_mask=None, last_layer: int | None = None,
                      keep=None) -> Iterator[tuple[int, Any]]:
        """Per-layer hidden states of a batch (see :meth:`EncoderProtocol.hidden_states`).

        Unmasked batches run the fused forward registered for this model_type, when it applies
        (:func:`alignkit.inputs.fused.fused_forward`); everything else runs transformers'
        ``output_hidden_states=True`` forward, which yields all ``n`` positions of every layer.
        """
        from alignkit.inputs.fused import fused_forward

        last = self.num_layers if last_layer is None else int(last_layer)
        fused = fused_forward(self.model, self.device) if attention_mask is None else None
        if fused is not None:
            return fused(input_ids, last, keep)
        return self._hf_hidden_states(input_ids, attention_mask, last)

    def _hf_hidden_states(self, input_ids, attention_mask, last: int) -> Iterator[tuple[int, Any]]:
        b, n = input_ids.shape
        kwargs = {} if attention_mask is None else {"attention_mask": attention_mask}
        hidden = self.model(input_ids=input_ids, output_hidden_states=True, **kwargs).hidden_states
        for layer in range(last + 1):
            yield layer, hidden[layer].reshape(b, n, int(self.hidden_size))


def resolve_checkpoint(ckpt: str | os.PathLike | None) -> tuple[str, Path | str]:
    """Map a user's checkpoint argument to (display name, local dir or hub id).

    Raises AlignkitError for a missing path or a directory that is not a model.
    """
    name = str(ckpt) if ckpt is not None else DEFAULT_MODEL
    if name.startswith(BUNDLED_PREFIX):
        if name != BUNDLED_ID:
            raise AlignkitError(f"unknown bundled model {name!r}; the bundled model is {BUNDLED_ID}")
        return name, ensure_bundled_model()
    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir():
            raise AlignkitError(f"checkpoint {p} is a file; pass the model directory that holds config.json")
        if not (p / "config.json").is_file():
            raise AlignkitError(f"checkpoint {p} has no config.json; pass a HuggingFace model directory "
                                "(save_pretrained output) or a hub id")
        if not any((p / w).is_file() for w in WEIGHT_FILES):
            raise AlignkitError(f"checkpoint {p} has no weight file ({', '.join(WEIGHT_FILES[:2])}); "
                                "pass a complete HuggingFace model directory")
        return name, p
    looks_local = name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1] or name.count("/") > 1
    if looks_local or not _HUB_ID.match(name):
        raise AlignkitError(f"checkpoint {name} does not exist; pass an existing model directory, a hub id, "
                            f"or {BUNDLED_ID}")
    return name, name


def query_prefix_for(name: str, config: Any) -> str:
    """Input prefix the model expects for sentence inputs (E5 models: ``"query: "``)."""
    extra = getattr(config, "alignkit", None)
    if isinstance(extra, dict) and "query_prefix" in extra:
        return extra["query_prefix"]
    return "query: " if re.search(r"(^|[/_\-])(multilingual-)?e5([_\-]|$)", name.lower()) else ""


def pick_dtype(device, dtype: str | None = None):
    """bf16 on GPUs that support it (else fp16), fp32 on CPU; ``dtype`` overrides."""
    import torch

    if dtype:
        table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                 "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
        if dtype not in table:
            raise AlignkitError(f"unknown dtype {dtype!r}; use fp32, bf16 or fp16")
        return table[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _load_normalizer(path: Path) -> Callable[[str], str] | None:
    f = Path(path) / NORMALIZER_FILE
    if not f.is_file():
        return None
    table = {int(k): v for k, v in json.loads(f.read_text()).items()}
    space_runs = re.compile(" {2,}")
    return lambda text: space_runs.sub(" ", text.translate(table))


class LazyEncoder(LazyCheckpoint):
    """An :class:`Encoder` of a local checkpoint whose weights and tokenizer load on first use.

    Name, fingerprint, shape, device, dtype, prefix and normaliser come from the directory
    (config.json, the memoised weight hashes), so a run whose vectors are all cached never
    imports transformers or reads the weights (measured ~3-5 s per checkpoint here). The first
    use of ``model``, ``tokenizer``, ``tokenize``, ``hidden_states`` or ``max_length`` loads
    them with :func:`load_encoder` (same errors) and checks they match what was read.
    """

    CHECKED = ("fingerprint", "num_layers", "hidden_size")

    def __init__(self, name: str, path: Path, device: str | None, dtype: str | None, config: dict):
        self.name, self.path = name, path
        self.fingerprint = model_fingerprint(path)
        self.num_layers = int(config["num_hidden_layers"] if "num_hidden_layers" in config else config["n_layers"])
        self.hidden_size = int(config["hidden_size"] if "hidden_size" in config else config["dim"])
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.query_prefix = query_prefix_for(name, SimpleNamespace(**config))
        self.normalize = _load_normalizer(path)
        self._args = (device, dtype)

    def _load_now(self) -> Encoder:
        return load_encoder(self.path, *self._args)


def _lazy_config(where: Path) -> dict | None:
    """config.json of a local checkpoint when a :class:`LazyEncoder` can stand in for it (an
    encoder with its layer count and width spelled out), else None (load it eagerly, which
    also gives the precise error)."""
    try:
        config = json.loads((where / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = (isinstance(config, dict) and config.get("model_type") in ENCODER_TYPES and not config.get("is_decoder")
          and ("num_hidden_layers" in config or "n_layers" in config) and ("hidden_size" in config or "dim" in config))
    return config if ok else None


def _maybe_decoder(where: Path) -> bool:
    """Whether config.json names a model type that is not an encoder's (a decoder, maybe)."""
    try:
        config = json.loads((where / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and (config.get("model_type") not in ENCODER_TYPES or bool(config.get("is_decoder")))


def load_encoder(ckpt: str | os.PathLike | None = None, device: str | None = None,
                 dtype: str | None = None, *, lazy: bool = False, decoders: bool = True) -> Any:
    """Load a checkpoint: ``bundled:multilingual-e5-small`` (default), a local HF dir, or a hub id.

    Encoders give an :class:`Encoder`; decoder-only language models (any config a causal LM is
    built from, loadable by ``AutoModel``) a :class:`alignkit.inputs.decoders.Decoder`, unless
    ``decoders=False`` (training), which refuses them in one line before reading weights.
    Raises AlignkitError (one line, naming the fix) for a missing path, a directory without
    config.json, an architecture that is neither, or unreadable/corrupt weights. ``lazy``: for
    a local encoder directory return a :class:`LazyEncoder` (weights read on first use, so a
    weight error surfaces then).
    """
    name, where = resolve_checkpoint(ckpt)
    if lazy and isinstance(where, Path):
        config = _lazy_config(where)
        if config is not None:
            return LazyEncoder(name, where, device, dtype, config)
        if decoders and _maybe_decoder(where):
            from alignkit.inputs.decoders import lazy_decoder

            lazy_dec = lazy_decoder(name, where, device, dtype)
            if lazy_dec is not None:
                return lazy_dec
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(str(where))
    except (OSError, ValueError, json.JSONDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AlignkitError(f"cannot read the config of checkpoint {name} ({first}); pass a HuggingFace "
                            "encoder directory or a hub id reachable from this machine") from None
    mtype = getattr(config, "model_type", "")
    if mtype not in ENCODER_TYPES or getattr(config, "is_decoder", False):
        from alignkit.inputs.decoders import is_causal_lm_config, load_decoder

        if not is_causal_lm_config(config):
            raise AlignkitError(f"checkpoint {name} is a {mtype or 'unknown'} model, not an encoder or a decoder-only "
                                "language model; alignkit scores encoders (BERT, XLM-R, E5) and causal LMs "
                                "(Llama, Qwen, Gemma, Mistral)")
        if not decoders:
            raise AlignkitError(f"checkpoint {name} is a decoder-only {mtype} model, not an encoder; alignkit train "
                                "fine-tunes encoders (BERT-family); score decoders with alignkit score")
        return load_decoder(name, where, config, device, dtype)
    dev = pick_device(device)
    dt = pick_dtype(dev, dtype)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            model = AutoModel.from_pretrained(str(where), dtype=dt, add_pooling_layer=False) \
                if mtype in ("bert", "xlm-roberta", "roberta", "camembert") else \
                AutoModel.from_pretrained(str(where), dtype=dt)
            tokenizer = AutoTokenizer.from_pretrained(str(where))
    except Exception as e:  # transformers raises many types for corrupt/incomplete files
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise AlignkitError(f"cannot load weights or tokenizer of checkpoint {name} ({msg}); "
                            "check the files are complete (re-save or re-download them)") from None
    if not getattr(tokenizer, "is_fast", False):
        raise AlignkitError(f"checkpoint {name} has no fast tokenizer; save one with "
                            "PreTrainedTokenizerFast (tokenizer.json) next to the weights")
    model.to(dev).eval()
    local = Path(where) if isinstance(where, Path) else Path(hub_snapshot_dir(model, where))
    fingerprint = model_fingerprint(local) if (local / "config.json").is_file() else \
        hashlib.sha256(name.encode()).hexdigest()[:16]
    return Encoder(
        model=model, tokenizer=tokenizer, name=name, path=local, fingerprint=fingerprint,
        num_layers=int(config.num_hidden_layers if hasattr(config, "num_hidden_layers") else config.n_layers),
        hidden_size=int(getattr(config, "hidden_size", getattr(config, "dim", 0))),
        device=dev, dtype=dt, query_prefix=query_prefix_for(name, config),
        normalize=_load_normalizer(local) if isinstance(where, Path) else None,
    )
