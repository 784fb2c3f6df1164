"""Token plans of texts encoded one per sequence: isolated words and sentences (SPEC §2).

Each text becomes one token sequence, ``prefix + template(text)`` as the model's own
tokenizer encodes it (BOS/EOS as it adds them), and one pick group over the text's own
tokens, weighted by the pooling (:mod:`alignkit.vectors.pooling`). Without a template the
own tokens are the non-special ones (an encoder's sentence prefix included, as E5 pools
it); with a template they are the tokens overlapping the text's characters.
"""
from __future__ import annotations

from typing import Any, Sequence

from alignkit.errors import AlignkitError
from alignkit.vectors.forward import Picks, tokenise
from alignkit.vectors.pooling import apply_template, own_token_positions, pooling_weights


def _normalised_span(encoder: Any, full: str, start: int, end: int) -> tuple[int, int]:
    """The text's character span in the normalised input the tokenizer's offsets refer to."""
    norm = getattr(encoder, "normalize", None)
    if norm is None:
        return start, end
    head = len(norm(full[:start]))
    return head, head + len(norm(full[start:end]))


def text_plan(encoder: Any, texts: Sequence[str], pooling: str, ids: list[list[int]], picks: Picks,
              row_of: Sequence[int], *, prefix: str = "", template: str | None = None,
              include_special: bool = False, what: str = "word") -> None:
    """Append one sequence per text, its own tokens feeding row ``row_of[i]``.

    ``include_special``: pool every position (specials too; E5's own sentence pooling, no
    template). Raises AlignkitError when a text has no own token (blank, or cut off by
    truncation).
    """
    if template is None:
        enc = tokenise(encoder, [prefix + t for t in texts])
        spans = None
    else:
        filled = [apply_template(template, t) for t in texts]
        full = [prefix + f for f, _, _ in filled]
        enc = tokenise(encoder, full, offsets=True)
        spans = [_normalised_span(encoder, x, len(prefix) + a, len(prefix) + b) for x, (_, a, b) in zip(full, filled)]
    empty = []
    for i, (tok, special) in enumerate(zip(enc["input_ids"], enc["special_tokens_mask"])):
        if include_special:
            positions = list(range(len(tok)))
        elif spans is None:
            positions = [p for p, s in enumerate(special) if not s]
        else:
            positions = own_token_positions(enc["offset_mapping"][i], special, *spans[i])
        if not positions:
            empty.append(i)
            continue
        pos, weights = pooling_weights(positions, pooling)
        picks.add(len(ids), pos, row_of[i], weights if pooling == "weighted" else weights[0])
        ids.append(list(tok))
    if empty:
        raise AlignkitError(f"{len(empty)} {what}(s) have no tokens once tokenised (first: {what} {empty[0]}, "
                            f"{texts[empty[0]]!r}); remove blank or whitespace-only {what}s")


__all__ = ["text_plan"]
