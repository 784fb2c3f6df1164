"""How token vectors become one vector per text: the one definition of every pooling (SPEC §2).

A text's vector at a layer is a weighted sum over positions of its token states; the
positions are the text's own tokens (not BOS/EOS or other special tokens, not a template's
tokens, not padding) and the weights depend only on the pooling and on how many own tokens
there are, never on padding or batch:

- ``mean``: 1/n on each of the n own tokens (the default, encoders and decoders alike);
- ``first``: 1 on the first own token;
- ``last``: 1 on the last own token (a decoder's summary of the whole text);
- ``weighted``: weight i / (1 + 2 + ... + n) on the i-th own token, i counted from the
  text's first own token (SGPT/MEXA position weighting).

:func:`pooling_weights` gives those weights for a list of own positions (extraction turns
them into its pick table); :func:`masked_mean` is the mean pooling of a padded batch as
training computes it (``[B, T, H]`` states, ``[B, T]`` mask). :func:`own_token_positions`
finds a text's own tokens inside a template. ``MODES`` are the word-vector modes.
Nothing here imports torch at module level (``import alignkit`` stays cheap).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from alignkit.errors import AlignkitError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

MODES = ("isolated", "contextual")
POOLINGS = ("mean", "first", "last", "weighted")
TEXT_SLOT = "{text}"


def check_pooling(pooling: str, flag: str = "pooling") -> str:
    """``pooling`` when it is one of :data:`POOLINGS`, else a one-line AlignkitError."""
    if pooling not in POOLINGS:
        raise AlignkitError(f"{flag} {pooling!r} is not a pooling; use one of {', '.join(POOLINGS)}")
    return pooling


def check_mode(mode: str, flag: str = "mode") -> str:
    """``mode`` when it is one of :data:`MODES`, else a one-line AlignkitError."""
    if mode not in MODES:
        raise AlignkitError(f"{flag} {mode!r} is not a mode; use one of {', '.join(MODES)}")
    return mode


def pooling_weights(positions: Sequence[int], pooling: str) -> tuple[list[int], list[float]]:
    """(positions, weights) that pool the own tokens at ``positions`` (in text order).

    The weights sum to 1. ``positions`` must be non-empty and in increasing order.
    """
    pos = list(positions)
    n = len(pos)
    if pooling == "mean":
        return pos, [1.0 / n] * n
    if pooling == "first":
        return pos[:1], [1.0]
    if pooling == "last":
        return pos[-1:], [1.0]
    if pooling == "weighted":
        total = n * (n + 1) / 2
        return pos, [(i + 1) / total for i in range(n)]
    raise AlignkitError(f"pooling {pooling!r} is not a pooling; use one of {', '.join(POOLINGS)}")


def check_template(template: str | None) -> str | None:
    """``template`` when it holds ``{text}`` exactly once (or is None/empty: no template)."""
    if not template:
        return None
    if template.count(TEXT_SLOT) != 1:
        raise AlignkitError(f"--template {template!r} must contain {TEXT_SLOT} exactly once, "
                            "e.g. \"Translate: {text}\"")
    return template


def apply_template(template: str | None, text: str) -> tuple[str, int, int]:
    """``(input, start, end)``: the text inside the template and its character span there."""
    if not template:
        return text, 0, len(text)
    head, tail = template.split(TEXT_SLOT)
    return head + text + tail, len(head), len(head) + len(text)


def own_token_positions(offsets: Sequence[tuple[int, int]], special: Sequence[int], start: int,
                        end: int) -> list[int]:
    """Positions of the non-special tokens whose characters overlap ``[start, end)``.

    A token that straddles the template/text boundary (a byte-level BPE token carrying the
    space before the text) holds some of the text's characters, so it counts as the text's own.
    """
    return [p for p, ((a, b), s) in enumerate(zip(offsets, special)) if not s and a < end and b > start]


def masked_mean(hidden: "Tensor", mask: "Tensor") -> "Tensor":
    """Mean of ``hidden`` [B, T, H] over positions where ``mask`` [B, T] is true -> [B, H].

    A row with no true position pools to zeros (never NaN).
    """
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


__all__ = ["MODES", "POOLINGS", "TEXT_SLOT", "apply_template", "check_mode", "check_pooling", "check_template",
           "masked_mean", "own_token_positions", "pooling_weights"]
