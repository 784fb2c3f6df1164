"""Decoder-only language models (Llama, Qwen2, Gemma2, Mistral, Phi, OLMo, ...) as alignkit models.

>>> dec = load_encoder("Qwen/Qwen2.5-0.5B")         # doctest: +SKIP   (dispatches here)
>>> dec.architecture, dec.default_pooling, dec.last_layer_normed   # doctest: +SKIP
('decoder', 'mean', True)

A checkpoint is a decoder when transformers can load it with ``AutoModel`` and its config is
one a causal language model is built from (:func:`is_causal_lm_config`); no list of model
types is kept. What alignkit needs differs from an encoder in data only, held on
:class:`Decoder`: the default pooling (``mean``), no input prefix, the dtype (fp32 on CPU,
bf16 on CUDA; fp16 is refused: Gemma-style activations overflow it), ``pad = eos`` when the
tokenizer has no pad token, and whether the last layer is after the final norm.

Layers are transformers' ``hidden_states`` (0 = embedding output as the first block sees it,
l = the input of block l, L = ``last_hidden_state``, after the final norm where the model has
one). :meth:`Decoder.pool_layers` hands each requested layer's states to a consumer *during*
the forward (a pre-hook per block, thread-local so concurrent workers do not mix), and stops
the forward after the highest requested layer: no batch ever holds every layer's token
states. :func:`load_decoder` checks the hooks against transformers' own ``hidden_states`` on
a probe input and falls back to ``output_hidden_states=True`` (correct, more memory) when they
disagree.

Loading records what it found (``last_layer_normed``, shape, pad id) per weights and dtype in
the user cache, so a later ``load_encoder(..., lazy=True)`` of the same directory returns a
:class:`LazyDecoder`: a re-score whose vectors are cached reads no weights and runs no forward.

A causal model's token at position p never attends to positions after p, so right padding
(and no attention mask) leaves every text's own tokens exactly as a forward of the text alone
(``pads_freely``): extraction pads batches on the right whatever the tokenizer's side.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from alignkit.errors import AlignkitError
from alignkit.inputs.checkpoint_files import LazyCheckpoint


class _StopForward(Exception):
    """Raised inside a hook once the highest requested layer is consumed."""


def is_causal_lm_config(config: Any) -> bool:
    """Whether ``config`` belongs to a model transformers builds causal LMs from and AutoModel loads."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_MAPPING

    try:
        return type(config) in MODEL_FOR_CAUSAL_LM_MAPPING and type(config) in MODEL_MAPPING
    except Exception:  # a lazy mapping entry that fails to import
        return False


def decoder_dtype(device: Any, dtype: str | None, name: str):
    """fp32 on CPU, bf16 on CUDA (fp32 where the card lacks bf16); ``dtype`` overrides; fp16 refused."""
    import torch

    if dtype in ("fp16", "float16", "half"):
        raise AlignkitError(f"fp16 is refused for decoder-only model {name} (activations overflow to inf/NaN, "
                            "Gemma-style); use --dtype bf16 on a GPU or fp32")
    if dtype:
        table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
        if dtype not in table:
            raise AlignkitError(f"unknown dtype {dtype!r}; use fp32 or bf16")
        return table[dtype]
    if getattr(device, "type", str(device)) == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.float32


def _blocks_of(model: Any, n_layers: int):
    """The ModuleList of the model's ``n_layers`` transformer blocks (shallowest such list)."""
    import torch.nn as nn

    found = [(name.count("."), name, m) for name, m in model.named_modules()
             if isinstance(m, nn.ModuleList) and len(m) == n_layers]
    if not found:
        return None
    return min(found, key=lambda t: (t[0], t[1]))[2]


@dataclass
class Decoder:
    """A loaded decoder-only model; satisfies :class:`alignkit.inputs.encoders.EncoderProtocol`.

    ``pool_layers`` is the extraction entry point (states of each requested layer handed to a
    consumer inside the forward); ``hidden_states`` is the protocol's generator (it holds the
    requested layers of one batch, for callers that want them all).
    """

    model: Any
    tokenizer: Any
    name: str
    path: Path
    fingerprint: str
    num_layers: int
    hidden_size: int
    device: Any
    dtype: Any
    last_layer_normed: bool
    pad_token_id: int
    query_prefix: str = ""
    normalize: Callable[[str], str] | None = None
    architecture: str = "decoder"
    default_pooling: str = "mean"
    pads_freely: bool = True            # right padding never changes a text's own tokens (causal)
    stores_all_layers: bool = False     # the vector cache keeps the requested layers only
    hooked: bool = True                 # False: fall back to output_hidden_states=True
    _local: Any = field(default_factory=threading.local, repr=False)
    _handles: list = field(default_factory=list, repr=False)

    @property
    def max_length(self) -> int:
        n = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        return tok_max if isinstance(tok_max, int) and 0 < tok_max < n else n

    @property
    def cache_fields(self) -> dict:
        """What decides a decoder's vectors beyond the weights (part of every cache key)."""
        return {"architecture": "decoder", "dtype": str(self.dtype).replace("torch.", ""),
                "last_layer_normed": bool(self.last_layer_normed)}

    def tokenize(self, texts: list[str], **kwargs):
        return self.tokenizer(list(texts), **kwargs)

    # -- hooks ----------------------------------------------------------------------------------
    def install_hooks(self) -> None:
        """One pre-hook per block: block l's input is ``hidden_states[l]`` (idle unless a consumer
        is set on this thread)."""
        blocks = _blocks_of(self.model, self.num_layers)
        if blocks is None:
            self.hooked = False
            return
        for layer, block in enumerate(blocks):
            self._handles.append(block.register_forward_pre_hook(self._pre_hook(layer), with_kwargs=True))

    def _pre_hook(self, layer: int):
        def hook(module, args, kwargs):
            state = getattr(self._local, "state", None)
            if state is None:
                return None
            consume, wanted, top = state
            if layer in wanted:
                hv = args[0] if args else kwargs["hidden_states"]
                consume(layer, hv)
            if layer >= top:
                raise _StopForward
            return None
        return hook

    def pool_layers(self, input_ids, layers: list[int], consume: Callable[[int, Any], None]) -> None:
        """Call ``consume(layer, hidden [B, n, dim])`` for each of ``layers`` of ``input_ids [B, n]``
        (no attention mask: batches are right-padded, see ``pads_freely``), layer by layer."""
        import torch

        wanted, top = set(layers), max(layers)
        with torch.inference_mode():
            if not self.hooked:
                hs = self.model(input_ids=input_ids, output_hidden_states=True, use_cache=False).hidden_states
                for layer in sorted(wanted):
                    consume(layer, hs[layer])
                return
            self._local.state = (consume, wanted, top if top < self.num_layers else self.num_layers + 1)
            try:
                out = self.model(input_ids=input_ids, use_cache=False)
            except _StopForward:
                return
            finally:
                self._local.state = None
            if self.num_layers in wanted:
                consume(self.num_layers, out.last_hidden_state)

    def hidden_states(self, input_ids, attention_mask=None, last_layer: int | None = None,
                      keep=None) -> Iterator[tuple[int, Any]]:
        """``(layer, hidden [B, n, dim])`` for layers 0..``last_layer`` (the protocol's generator)."""
        if attention_mask is not None and not bool(attention_mask.all()):
            raise AlignkitError("decoder batches are right-padded without a mask; pass attention_mask=None")
        last = self.num_layers if last_layer is None else int(last_layer)
        got: list = []
        self.pool_layers(input_ids, list(range(last + 1)), lambda layer, hv: got.append((layer, hv)))
        return iter(got)


def _agrees(dec: Decoder) -> tuple[bool, bool]:
    """(hooks give transformers' hidden_states, the last layer differs from the last block's output)
    on a short probe input."""
    import torch

    ids = torch.tensor([[dec.pad_token_id % max(1, dec.model.config.vocab_size)] + list(range(1, 6))],
                       device=dec.device) % int(dec.model.config.vocab_size)
    with torch.inference_mode():
        ref = dec.model(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states
        if len(ref) != dec.num_layers + 1:
            raise AlignkitError(f"checkpoint {dec.name} returns {len(ref)} hidden states, not layers + 1 = "
                                f"{dec.num_layers + 1}; alignkit cannot tell its layers apart")
        got = dict(dec.hidden_states(ids))
        blocks = _blocks_of(dec.model, dec.num_layers)
        last_out: list = []
        handle = blocks[-1].register_forward_hook(
            lambda m, a, o: last_out.append(o[0] if isinstance(o, tuple) else o)) if blocks is not None else None
        try:
            dec.model(input_ids=ids, use_cache=False)
        finally:
            if handle is not None:
                handle.remove()
    # two forwards of one input: bitwise equal on CPU; a GPU may pick other kernels (bf16: ~1e-2)
    tol = 1e-5 if dec.dtype == torch.float32 else 2e-2

    def close(a, b) -> bool:
        return bool(torch.allclose(a.float(), b.float(), rtol=tol, atol=tol))

    same = all(close(got[layer], ref[layer]) for layer in range(len(ref)))
    normed = bool(last_out) and not close(last_out[-1], ref[-1])
    return same, normed


_FACTS_FILE = "decoder_facts.json"


def _facts_key(fingerprint: str, dtype: Any) -> str:
    return f"{fingerprint}|{str(dtype).replace('torch.', '')}"


def remembered_facts(fingerprint: str, dtype: Any) -> dict | None:
    """What loading a decoder found out (``last_layer_normed``, ``hooked``, ``pad_token_id``,
    layers, width), memoised per weights and dtype in the user cache; None if never loaded."""
    import json

    from alignkit.inputs.bundled import cache_root

    try:
        return json.loads((cache_root() / _FACTS_FILE).read_text()).get(_facts_key(fingerprint, dtype))
    except (OSError, ValueError, AttributeError):
        return None


def _remember(dec: Decoder) -> None:
    import json

    from alignkit.atomic import write_text
    from alignkit.inputs.bundled import cache_root

    f = cache_root() / _FACTS_FILE
    try:
        memo = json.loads(f.read_text())
    except (OSError, ValueError):
        memo = {}
    memo[_facts_key(dec.fingerprint, dec.dtype)] = {
        "last_layer_normed": bool(dec.last_layer_normed), "hooked": bool(dec.hooked),
        "pad_token_id": int(dec.pad_token_id), "num_layers": int(dec.num_layers), "hidden_size": int(dec.hidden_size)}
    try:
        write_text(f, json.dumps(memo))
    except (OSError, AlignkitError):
        pass  # the memo only saves a load on warm runs


class LazyDecoder(LazyCheckpoint):
    """A :class:`Decoder` of a local checkpoint loaded before (its facts memoised), whose weights
    load on first use: a run whose vectors are all cached reads no weights and runs no forward.
    Everything a cache key needs (fingerprint, dtype, ``last_layer_normed``) is known without them.
    """

    architecture = "decoder"
    default_pooling = "mean"
    pads_freely = True
    stores_all_layers = False
    query_prefix = ""
    normalize = None
    CHECKED = ("fingerprint", "num_layers", "last_layer_normed")

    def __init__(self, name: str, path: Path, device: str | None, dtype: str | None, fingerprint: str,
                 dt: Any, facts: dict):
        from alignkit.inputs.checkpoint_files import pick_device

        self.name, self.path, self.fingerprint, self.dtype = name, path, fingerprint, dt
        self.device = pick_device(device)
        self.num_layers, self.hidden_size = int(facts["num_layers"]), int(facts["hidden_size"])
        self.last_layer_normed = bool(facts["last_layer_normed"])
        self._args = (device, dtype)

    cache_fields = Decoder.cache_fields

    def _load_now(self) -> Decoder:
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(str(self.path))
        except (OSError, ValueError) as e:
            raise AlignkitError(f"cannot read the config of checkpoint {self.name} ({type(e).__name__}); "
                                "it changed while it was being scored; run again") from None
        return load_decoder(str(self.path), self.path, config, *self._args)

    pad_token_id = property(lambda self: self.load().pad_token_id)

    def pool_layers(self, *args, **kwargs):
        return self.load().pool_layers(*args, **kwargs)


def lazy_decoder(name: str, where: Path, device: str | None, dtype: str | None) -> LazyDecoder | None:
    """A :class:`LazyDecoder` when this directory's decoder was loaded before in this dtype, else None."""
    from alignkit.inputs.checkpoint_files import model_fingerprint, pick_device

    try:
        dt = decoder_dtype(pick_device(device), dtype, name)
    except AlignkitError:
        return None  # the eager load gives the error
    fingerprint = model_fingerprint(where)
    facts = remembered_facts(fingerprint, dt)
    if not facts or not {"num_layers", "hidden_size", "last_layer_normed"} <= set(facts):
        return None
    return LazyDecoder(name, where, device, dtype, fingerprint, dt, facts)


def load_decoder(name: str, where: Path | str, config: Any, device: str | None, dtype: str | None) -> Decoder:
    """Load a decoder-only checkpoint (directory or hub id) as a :class:`Decoder` (eval mode, no KV cache)."""
    import logging
    import warnings

    from transformers import AutoModel, AutoTokenizer

    from alignkit.inputs.checkpoint_files import model_fingerprint, pick_device

    dev = pick_device(device)
    dt = decoder_dtype(dev, dtype, name)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            model = AutoModel.from_pretrained(str(where), dtype=dt)
            tokenizer = AutoTokenizer.from_pretrained(str(where))
    except Exception as e:  # transformers raises many types for corrupt/incomplete files
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise AlignkitError(f"cannot load weights or tokenizer of checkpoint {name} ({msg}); "
                            "check the files are complete (re-save or re-download them)") from None
    if not getattr(tokenizer, "is_fast", False):
        raise AlignkitError(f"checkpoint {name} has no fast tokenizer; save one (tokenizer.json) next to the weights")
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise AlignkitError(f"the tokenizer of {name} has neither a pad nor an eos token; add one")
        tokenizer.pad_token = tokenizer.eos_token
    model.config.use_cache = False
    model.to(dev).eval()
    import hashlib

    from alignkit.inputs.checkpoint_files import hub_snapshot_dir

    local = Path(where) if isinstance(where, Path) else Path(hub_snapshot_dir(model, str(where)))

    fingerprint = model_fingerprint(local) if (local / "config.json").is_file() else \
        hashlib.sha256(name.encode()).hexdigest()[:16]
    n_layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0))
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0))
    dec = Decoder(model=model, tokenizer=tokenizer, name=name, path=local, fingerprint=fingerprint,
                  num_layers=n_layers, hidden_size=hidden, device=dev, dtype=dt, last_layer_normed=False,
                  pad_token_id=int(tokenizer.pad_token_id))
    dec.install_hooks()
    same, normed = _agrees(dec) if dec.hooked else (False, False)
    dec.last_layer_normed = normed
    if not same:
        for h in dec._handles:
            h.remove()
        dec._handles.clear()
        dec.hooked = False
    _remember(dec)
    return dec


__all__ = ["Decoder", "LazyDecoder", "decoder_dtype", "is_causal_lm_config", "lazy_decoder", "load_decoder"]
