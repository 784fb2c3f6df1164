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


def tiny_gpt2(path: Path) -> Path:
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=32)).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return Path(path)
