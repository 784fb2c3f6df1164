"""Tiny random-weight checkpoints for fast tests (built on the fly, never shipped)."""
from __future__ import annotations

from pathlib import Path

WORDS = ["hello", "world", "cat", "dog", "house", "water", "kedi", "köpek", "ev", "su", "katze", "hund",
         "haus", "wasser", "the", "a", "is", "on", "big", "small"]


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + WORDS + [w[:2] for w in WORDS] + ["##" + c for c in "abcdefghijklmnopqrstuvwxyzöü"])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=50))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def tiny_bert(path: Path, layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """A random BertModel + WordPiece tokenizer saved as a HF directory at ``path``."""
    import torch
    from transformers import BertConfig, BertModel

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=64)
    BertModel(cfg, add_pooling_layer=False).save_pretrained(path)
    tok.save_pretrained(path)
    return Path(path)


def tiny_vit(path: Path) -> Path:
    """A model that is neither an encoder of text nor a causal LM (a tiny random ViT)."""
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                       image_size=8, patch_size=4)).save_pretrained(path)
    return Path(path)


def tiny_gpt2(path: Path) -> Path:
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=32)).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return Path(path)


# --------------------------------------------------------------------------- decoder-only models

DECODER_CORPUS = [
    "the cat is on the house", "the dog drinks water", "a big house and a small cat",
    "kedi evde", "köpek su içer", "büyük ev ve küçük kedi", "die katze ist im haus", "der hund trinkt wasser",
    "ein großes haus und eine kleine katze", "hello world", "translate the word", "Translate: hello",
] + WORDS

DECODER_ARCHS = ("llama", "qwen2", "gemma2", "mistral")


def tiny_bpe(add_bos: bool, vocab_size: int = 400):
    """A byte-level BPE tokenizer trained here on :data:`DECODER_CORPUS` (well under a second):
    ``<|endoftext|>`` is eos (and no pad token, as Qwen ships it); ``add_bos``: ``<s>`` first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(DECODER_CORPUS * 3, trainer=trainer)
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    kw = {"bos_token": "<s>"} if add_bos else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", **kw)


def tiny_decoder(path: Path, arch: str = "qwen2", layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """A random-weight decoder-only model of ``arch`` (:data:`DECODER_ARCHS`, or phi, phi3, olmo,
    olmo2) + trained BPE tokenizer,
    saved with save_pretrained at ``path`` (no LM head: what AutoModel loads)."""
    import torch
    import transformers as tf

    tok = tiny_bpe(add_bos=arch != "qwen2")
    common = dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    cfg = {"llama": lambda: tf.LlamaConfig(**common),
           "qwen2": lambda: tf.Qwen2Config(**common),
           "gemma2": lambda: tf.Gemma2Config(**common, head_dim=hidden // 4, sliding_window=16,
                                             query_pre_attn_scalar=hidden // 4),
           "mistral": lambda: tf.MistralConfig(**common, sliding_window=16),
           "phi": lambda: tf.PhiConfig(**common),
           "phi3": lambda: tf.Phi3Config(**common, pad_token_id=tok.eos_token_id),
           "olmo": lambda: tf.OlmoConfig(**common),
           "olmo2": lambda: tf.Olmo2Config(**common)}[arch]()
    torch.manual_seed(seed)
    model = tf.AutoModel.from_config(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return Path(path)
