"""Titles, descriptions and FashionIQ-style relative captions for synthetic products.

Texts are only partially aligned with the image (KG-FLIP §1): a title names a few attributes, the
description some others, and several visible ones are never written; the text adds facts no image
shows (material, care, origin, fit, brand, marketing).
"""

from __future__ import annotations

import numpy as np

from fashionvlp.data.schema import AttributeSchema
from fashionvlp.data.synth.spec import (
    BRAND_WORDS, CARE, FIT_NOTES, MARKETING, ORIGINS, SEASONS, UNDERWRITTEN, SubcategorySpec,
)

TITLE_ORDER = ["color", "pattern", "length", "silhouette", "neckline", "sleeve_length", "waistline", "heel", "toe",
               "strap", "closure"]


def _choice(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def surface(rng: np.random.Generator, schema: AttributeSchema, attr: str, value: str, shade_form: str | None = None) -> str:
    """A surface form for a value; colours usually name the exact shade that was rendered."""
    if attr == "color" and shade_form is not None and rng.random() < 0.7:
        return shade_form
    forms = schema.surface_forms(attr, value)
    # The canonical form is the most common way of writing a value.
    return forms[0] if rng.random() < 0.5 else _choice(rng, forms)


def _title_word(attr: str, form: str) -> str:
    if attr == "pattern" and form in ("solid", "plain"):
        return ""
    return form


def _sentence(rng: np.random.Generator, attr: str, form: str, noun: str) -> str:
    templates = {
        "color": ["Shown in {f}.", "Colour: {f}.", "In a rich {f} tone."],
        "pattern": ["{F} pattern throughout.", "Features an all-over {f} print.", "Designed with a {f} motif."],
        "length": ["Falls to a {f} length.", "{F} length.", "Cut to a {f} hem."],
        "silhouette": ["Cut in a {f} silhouette.", "{F} fit.", "A {f} shape that flatters."],
        "neckline": ["Features a {f}.", "Finished with a {f}.", "Cut with a {f}."],
        "sleeve_length": ["Finished with {f}s.", "{F} styling.", "Designed with {f}s."],
        "waistline": ["Sits at the {f}.", "{F} cut.", "A {f} that lengthens the leg."],
        "closure": ["Fastens with a {f} closure.", "{F} fastening.", "Easy {f} closure."],
        "heel": ["Set on a {f}.", "{F} for all-day comfort.", "Elevated by a {f}."],
        "toe": ["{F} silhouette.", "Finished with a {f}.", "Shaped with a {f}."],
        "strap": ["Carried by a {f}.", "Comes with a {f}.", "{F} for easy carrying."],
        "material": ["Crafted from {f}.", "{F} construction.", "Made from soft {f}.", "Main fabric: {f}."],
    }
    if attr == "pattern" and form in ("solid", "plain"):
        return _choice(rng, ["A clean, plain finish.", "Solid colour throughout."])
    text = _choice(rng, templates[attr])
    return text.replace("{f}", form).replace("{F}", form[:1].upper() + form[1:])


def write_product_text(rng: np.random.Generator, schema: AttributeSchema, spec: SubcategorySpec,
                       attributes: dict[str, str], shade_form: str) -> tuple[str, str, set[str]]:
    """(title, description, attributes written anywhere in the text)."""
    noun = _choice(rng, spec.nouns)
    visible = [a for a in TITLE_ORDER if a in attributes]
    n_title = int(rng.integers(1, 4))
    # Underwritten attributes rarely make the title.
    weights = np.array([0.25 if a in UNDERWRITTEN else 1.0 for a in visible])
    chosen = set(rng.choice(visible, size=min(n_title, len(visible)), replace=False, p=weights / weights.sum()))
    words = []
    for attr in visible:
        if attr in chosen:
            word = _title_word(attr, surface(rng, schema, attr, attributes[attr], shade_form))
            if word:
                words.append(word)
    title = " ".join(words + [noun])
    if rng.random() < 0.3:
        title = f"{_choice(rng, BRAND_WORDS)} {title}"
    if rng.random() < 0.4:
        title = title.title()
    else:
        title = title[:1].upper() + title[1:]
    written = set(chosen)

    sentences: list[str] = []
    for attr in visible:
        if attr in chosen:
            continue
        p = 0.2 if attr in UNDERWRITTEN else 0.45
        if rng.random() < p:
            sentences.append(_sentence(rng, attr, surface(rng, schema, attr, attributes[attr], shade_form), noun))
            written.add(attr)
    if "material" in attributes and rng.random() < 0.8:
        sentences.append(_sentence(rng, "material", surface(rng, schema, "material", attributes["material"]), noun))
        written.add("material")
    extras = [(0.5, CARE), (0.35, ORIGINS), (0.4, FIT_NOTES), (0.6, MARKETING)]
    for p, pool in extras:
        if rng.random() < p:
            sentences.append(_choice(rng, pool))
    if rng.random() < 0.15:
        sentences.append(f"Season: {_choice(rng, SEASONS)}.")
    order = rng.permutation(len(sentences))
    description = " ".join(sentences[i] for i in order)
    return title, description, written


_LENGTH_RANK = {"micro": 0, "mini": 1, "above-the-knee": 2, "knee-length": 3, "midi": 4, "maxi": 5,
                "floor-length": 6}
_SLEEVE_RANK = {"sleeveless": 0, "short sleeve": 1, "elbow-length": 2, "three-quarter sleeve": 3, "long sleeve": 4}


def _change_phrase(rng: np.random.Generator, schema: AttributeSchema, attr: str, ref: str, tgt: str) -> str:
    f = surface(rng, schema, attr, tgt)
    if attr == "color":
        return _choice(rng, [f"is {f}", f"is {f} instead of {ref}", f"is in {f}", f"has a {f} colour"])
    if attr == "pattern":
        if tgt == "solid":
            return _choice(rng, ["is plain", "has no print", "is a solid colour"])
        return _choice(rng, [f"has a {f} pattern", f"is {f}", f"features a {f} print"])
    if attr == "length":
        longer = _LENGTH_RANK.get(tgt, 0) > _LENGTH_RANK.get(ref, 0)
        return _choice(rng, [f"is {f}", "is longer" if longer else "is shorter", f"is {f} length"])
    if attr == "sleeve_length":
        if tgt == "sleeveless":
            return _choice(rng, ["is sleeveless", "has no sleeves"])
        longer = _SLEEVE_RANK.get(tgt, 0) > _SLEEVE_RANK.get(ref, 0)
        return _choice(rng, [f"has {f}s", "has longer sleeves" if longer else "has shorter sleeves"])
    if attr == "neckline":
        return _choice(rng, [f"has a {f}", f"with a {f}", f"has a {f} instead"])
    if attr == "silhouette":
        return _choice(rng, [f"is {f}", f"has a {f} shape", f"is more {f}"])
    return _choice(rng, [f"has a {f} {attr.replace('_', ' ')}", f"is {f}"])


def relative_captions(rng: np.random.Generator, schema: AttributeSchema, ref: dict[str, str], tgt: dict[str, str],
                      changed: list[str]) -> tuple[str, str]:
    """Two independently worded captions, as FashionIQ's two annotators would write."""
    def one() -> str:
        order = rng.permutation(len(changed))
        return " and ".join(_change_phrase(rng, schema, changed[i], ref[changed[i]], tgt[changed[i]]) for i in order)

    first, second = one(), one()
    for _ in range(4):
        if second != first:
            break
        second = one()
    return first, second
