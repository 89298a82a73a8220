"""Attribute knowledge as policies for the objectives (KG-FLIP) and pseudo-attributes (FashionViL's PAC).

- ``token_attribute_units``: which tokens belong to which attribute mention (KG-MLIM masks these first);
- ``swap_attributes``: a negative text with every mentioned value replaced by another value of the same
  attribute (KG-ITM);
- ``mine_pseudo_attributes``: frequent phrases of the corpus, PAC's label space.
Mentions are found once per text by the schema's surface forms (``AttributeSchema.find_mentions``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from fashionvlp.data.schema import AttributeSchema, Mention

_WORD = re.compile(r"[a-z][a-z\-]+")
# Words that never make an attribute on their own; they would crowd PAC's label space.
STOPWORDS = frozenset("""a an and are as at be by for from has have in into is it its of on or our that the this
to was with without your you made main fabric colour color cut shape style fit piece size model wears
""".split())


def token_attribute_units(offsets: Sequence[tuple[int, int]], mentions: Sequence[Mention]) -> list[int]:
    """Per token: the index of the mention it overlaps, or -1. Special tokens have empty offsets."""
    units = [-1] * len(offsets)
    for m_index, mention in enumerate(mentions):
        for t_index, (start, end) in enumerate(offsets):
            if end > start and start < mention.end and end > mention.start:
                units[t_index] = m_index
    return units


def swap_attributes(text: str, mentions: Sequence[Mention], schema: AttributeSchema,
                    rng: np.random.Generator) -> str | None:
    """``text`` with each mentioned attribute value replaced by another value of the same attribute.

    Returns None when no mention has a substitute (the caller falls back to another product's text).
    """
    pieces, cursor, swapped = [], 0, False
    for mention in sorted(mentions, key=lambda m: m.start):
        if mention.start < cursor:
            continue
        others = schema.substitutes(mention.attribute, mention.value)
        if not others:
            continue
        new_value = others[int(rng.integers(len(others)))]
        surface = schema.surface_forms(mention.attribute, new_value)[0]
        pieces += [text[cursor:mention.start], surface]
        cursor, swapped = mention.end, True
    if not swapped:
        return None
    pieces.append(text[cursor:])
    return "".join(pieces)


def _phrases(text: str, max_ngram: int) -> set[str]:
    out: set[str] = set()
    for chunk in re.split(r"[.,;:!?()]", text.lower()):
        words = _WORD.findall(chunk)
        for n in range(1, max_ngram + 1):
            for i in range(len(words) - n + 1):
                gram = words[i:i + n]
                if gram[0] in STOPWORDS or gram[-1] in STOPWORDS:
                    continue
                out.add(" ".join(gram))
    return out


def mine_pseudo_attributes(texts: Iterable[str], num: int, min_count: int, max_ngram: int) -> list[str]:
    """The ``num`` most frequent phrases (1..max_ngram words, document frequency ≥ min_count)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(_phrases(text, max_ngram))
    ranked = sorted((p for p, c in counts.items() if c >= min_count), key=lambda p: (-counts[p], p))
    return ranked[:num]


def pseudo_attribute_indices(text: str, vocabulary: dict[str, int], max_ngram: int) -> list[int]:
    return sorted(vocabulary[p] for p in _phrases(text, max_ngram) if p in vocabulary)
