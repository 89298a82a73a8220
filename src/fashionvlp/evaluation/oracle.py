"""Attribute oracles: the ceilings that a model's retrieval numbers are read against.

The oracle knows each product's labelled *visible* attributes (the catalog's ``attributes``, restricted to
the schema's visible ones) and reads texts only through the schema's surface forms. Its score for a
(product, text) pair is the number of visible attributes the text confirms minus the number it
contradicts. Those scores are coarse counts with many ties, so its recall is the expected recall with
ties broken at random (``ties="expected"``): the best any model can reach from what the labels and the
words show, not from gallery order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fashionvlp.data.schema import AttributeSchema, Product

PROTOCOL = ("attribute oracle: score = visible-attribute values the text confirms − those it contradicts "
            "(labels vs the schema's surface forms), ties at random (expected recall)")


class _Columns:
    """One column per (visible attribute, value) of the schema."""

    def __init__(self, schema: AttributeSchema):
        self.attributes = [a for a, d in schema.attributes.items() if d.visible]
        self.column = {(a, v): i for i, (a, v) in enumerate((a, v) for a in self.attributes
                                                           for v in schema.values_of(a))}
        self.attribute_of = np.array([self.attributes.index(a) for a, _ in self.column])

    def labels(self, attributes: Sequence[dict[str, str]]) -> np.ndarray:
        """[N, columns] one-hot of each row's labelled values."""
        out = np.zeros((len(attributes), len(self.column)))
        for row, attrs in enumerate(attributes):
            for a, v in attrs.items():
                if (a, v) in self.column:
                    out[row, self.column[(a, v)]] = 1
        return out

    def per_attribute(self, onehot: np.ndarray) -> np.ndarray:
        """[N, attributes]: whether the row has any value of each attribute."""
        out = np.zeros((len(onehot), len(self.attributes)))
        np.add.at(out.T, self.attribute_of, onehot.T)
        return (out > 0).astype(np.float64)


def agreement(labels: np.ndarray, mentions: np.ndarray, columns: _Columns) -> np.ndarray:
    """[rows of labels, rows of mentions]: confirmed − contradicted visible attributes."""
    confirmed = labels @ mentions.T
    both = columns.per_attribute(labels) @ columns.per_attribute(mentions).T
    # A text naming several values of one attribute confirms it when one of them is the label.
    confirmed = np.minimum(confirmed, both)
    return 2 * confirmed - both


def mentioned(schema: AttributeSchema, text: str, category: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m in schema.find_mentions(text, category):
        out.setdefault(m.attribute, set()).add(m.value)
    return out


def _mention_matrix(columns: _Columns, rows: Sequence[dict[str, set[str]]]) -> np.ndarray:
    out = np.zeros((len(rows), len(columns.column)))
    for row, named in enumerate(rows):
        for a, values in named.items():
            for v in values:
                if (a, v) in columns.column:
                    out[row, columns.column[(a, v)]] = 1
    return out


def has_visible_labels(schema: AttributeSchema, products: Sequence[Product]) -> bool:
    visible = {a for a, d in schema.attributes.items() if d.visible}
    return any(visible & set(p.attributes) for p in products)


class AgreementScores:
    """[N, N] ``agreement`` of product i's labels with product j's text, read a block of rows at a time
    (``evaluation.retrieval.ScoreRows``). Agreement is symmetric in its arguments, so the transpose swaps them."""

    def __init__(self, queries: np.ndarray, gallery: np.ndarray, columns: _Columns):
        self.queries, self.gallery, self.columns = queries, gallery, columns
        self.shape = (len(queries), len(gallery))

    def rows(self, index: np.ndarray) -> np.ndarray:
        return agreement(self.queries[index], self.gallery, self.columns)

    @property
    def T(self) -> "AgreementScores":
        return AgreementScores(self.gallery, self.queries, self.columns)


def retrieval_scores(schema: AttributeSchema, products: Sequence[Product]) -> AgreementScores:
    """[N, N]: the oracle's score of product i's image against product j's text (XMR's ``scores``)."""
    columns = _Columns(schema)
    labels = columns.labels([p.attributes for p in products])
    mentions = _mention_matrix(columns, [mentioned(schema, p.text, p.category) for p in products])
    return AgreementScores(labels, mentions, columns)


def modified_attributes(schema: AttributeSchema, reference: Product, captions: Sequence[str]) -> dict[str, str]:
    """The reference's visible labels with the changes the captions name: for each attribute a caption
    mentions, the named value that differs from the reference's ("is red instead of blue" → red)."""
    target = {a: v for a, v in reference.attributes.items() if schema.attributes.get(a) and
              schema.attributes[a].visible}
    for caption in captions:
        for attribute, values in mentioned(schema, caption, reference.category).items():
            changed = sorted(values - {reference.attributes.get(attribute)})
            if changed:
                target[attribute] = changed[0]
    return target


def composed_scores(schema: AttributeSchema, queries: Sequence[dict[str, str]], gallery: Sequence[Product]) -> np.ndarray:
    """[queries, gallery]: agreement of each query's expected target attributes with each gallery product."""
    columns = _Columns(schema)
    expected = _mention_matrix(columns, [{a: {v} for a, v in q.items()} for q in queries])
    return agreement(expected, columns.labels([p.attributes for p in gallery]), columns)


def text_names_label(schema: AttributeSchema, products: Sequence[Product], attribute: str) -> tuple[int, int]:
    """(products labelled with ``attribute`` whose text names that value, products labelled)."""
    labelled = [p for p in products if attribute in p.attributes]
    named = sum(p.attributes[attribute] in mentioned(schema, p.text, p.category).get(attribute, set())
                for p in labelled)
    return named, len(labelled)
