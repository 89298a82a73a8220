"""The catalog's record types and its attribute schema (SPEC §2).

A catalog is one directory:

    catalog.json        manifest: format version, source, counts, generator config
    schema.json         AttributeSchema: taxonomy + per-category attributes, values and surface forms
    products.parquet    one row per Product
    triplets.parquet    FashionIQ-style (reference, captions, target) rows
    outfits.parquet     outfits as lists of product ids
    fitb.parquet        (optional) Polyvore fill-in-the-blank questions as released
    compatibility.parquet  (optional) Polyvore outfit-compatibility items as released
    images/<xx>/<product_id>_<k>_<view>.jpg

The schema is shaped for what later stages need: ``surface_index`` drives attribute-word detection in
text (KG-MLIM, KG-ITM), ``substitutes`` gives same-attribute replacements, and every image view carries
its view name so datasets can sample views (MVC).
"""

from __future__ import annotations

import re
from functools import cached_property
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SPLITS = ("train", "val", "test")
Split = Literal["train", "val", "test"]
VIEW_NAMES = ("front", "back", "detail", "alternate", "side", "worn")
CATALOG_FORMAT_VERSION = 1


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageView(Record):
    path: str = Field(min_length=1, description="relative to the catalog root")
    view: str = Field(min_length=1)


class Product(Record):
    product_id: str = Field(min_length=1)
    title: str
    description: str = ""
    category: str = Field(min_length=1)
    subcategory: str = Field(min_length=1)
    attributes: dict[str, str] = Field(default_factory=dict)
    images: tuple[ImageView, ...] = Field(min_length=1)
    split: Split

    @field_validator("title")
    @classmethod
    def _title_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("title is empty")
        return value

    @property
    def text(self) -> str:
        return f"{self.title}. {self.description}".strip()


class Triplet(Record):
    """FashionIQ layout: a reference product, two modifying captions, and the target product."""

    triplet_id: str = Field(min_length=1)
    reference_id: str = Field(min_length=1)
    target_id: str = Field(min_length=1)
    captions: tuple[str, str]
    group: str = Field(min_length=1, description="FashionIQ category: dress, shirt or toptee")
    split: Split

    @model_validator(mode="after")
    def _distinct(self) -> "Triplet":
        if self.reference_id == self.target_id:
            raise ValueError("reference_id and target_id are the same product")
        return self


class Outfit(Record):
    outfit_id: str = Field(min_length=1)
    product_ids: tuple[str, ...] = Field(min_length=2)
    split: Split


class FitbQuestion(Record):
    """Polyvore's fill-in-the-blank question as released: an outfit's other items, candidates for its blank
    (one of them the outfit's own item, ``answer``), scored by accuracy."""

    question_id: str = Field(min_length=1)
    product_ids: tuple[str, ...] = Field(min_length=1)
    candidates: tuple[str, ...] = Field(min_length=2)
    answer: int = Field(ge=0)
    split: Split

    @model_validator(mode="after")
    def _answer_is_a_candidate(self) -> "FitbQuestion":
        if self.answer >= len(self.candidates):
            raise ValueError(f"answer {self.answer} is not one of the {len(self.candidates)} candidates")
        return self


class CompatibilityOutfit(Record):
    """Polyvore's outfit-compatibility item as released: a real outfit (compatible) or one made of items
    drawn from other outfits (not), scored by AUC."""

    outfit_id: str = Field(min_length=1)
    product_ids: tuple[str, ...] = Field(min_length=2)
    compatible: bool
    split: Split


class AttributeDef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visible: bool = True
    # value → surface forms; the first form is the canonical name.
    values: dict[str, list[str]]

    @field_validator("values")
    @classmethod
    def _forms_nonempty(cls, values: dict[str, list[str]]) -> dict[str, list[str]]:
        for value, forms in values.items():
            if not forms:
                raise ValueError(f"value {value!r} has no surface forms")
        return values


class CategoryDef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subcategories: list[str] = Field(min_length=1)
    attributes: list[str] = Field(default_factory=list)


class Mention(BaseModel):
    """An attribute value named in a text: characters [start, end)."""

    model_config = ConfigDict(frozen=True)
    start: int
    end: int
    attribute: str
    value: str
    surface: str


class AttributeSchema(BaseModel):
    """Per category: its subcategories and applicable attributes; per attribute: values and surface forms."""

    model_config = ConfigDict(extra="forbid")
    attributes: dict[str, AttributeDef]
    categories: dict[str, CategoryDef]

    @model_validator(mode="after")
    def _consistent(self) -> "AttributeSchema":
        for name, cat in self.categories.items():
            unknown = [a for a in cat.attributes if a not in self.attributes]
            if unknown:
                raise ValueError(f"category {name!r} names unknown attributes {unknown}")
        for attr, definition in self.attributes.items():
            seen: dict[str, str] = {}
            for value, forms in definition.values.items():
                for form in forms:
                    key = form.lower()
                    if key in seen and seen[key] != value:
                        raise ValueError(
                            f"attribute {attr!r}: surface form {form!r} names both {seen[key]!r} and {value!r}"
                        )
                    seen[key] = value
        return self

    # --- lookups -----------------------------------------------------------------------------
    def attributes_for(self, category: str) -> list[str]:
        cat = self.categories.get(category)
        return list(cat.attributes) if cat else []

    def subcategories_of(self, category: str) -> list[str]:
        return list(self.categories[category].subcategories)

    @cached_property
    def category_of_subcategory(self) -> dict[str, str]:
        return {sub: cat for cat, d in self.categories.items() for sub in d.subcategories}

    def values_of(self, attribute: str) -> list[str]:
        return list(self.attributes[attribute].values)

    def surface_forms(self, attribute: str, value: str) -> list[str]:
        return list(self.attributes[attribute].values[value])

    def check_attribute(self, category: str, attribute: str, value: str) -> str | None:
        """None if (category, attribute, value) is allowed, else a readable reason."""
        if category not in self.categories:
            return f"unknown category {category!r}"
        applicable = self.categories[category].attributes
        if attribute not in applicable:
            return f"attribute {attribute!r} does not apply to category {category!r} (applicable: {', '.join(applicable)})"
        allowed = self.attributes[attribute].values
        if value not in allowed:
            return f"unknown value {value!r} for attribute {attribute!r} (allowed: {', '.join(allowed)})"
        return None

    def substitutes(self, attribute: str, value: str) -> list[str]:
        """Other values of the same attribute (KG-ITM's attribute-swap negatives)."""
        return [v for v in self.attributes[attribute].values if v != value]

    # --- attribute-word detection --------------------------------------------------------------
    @cached_property
    def _patterns(self) -> dict[str, tuple[re.Pattern[str], dict[str, tuple[str, str]]]]:
        out = {}
        for category in self.categories:
            index: dict[str, tuple[str, str]] = {}
            for attr in self.categories[category].attributes:
                for value, forms in self.attributes[attr].values.items():
                    for form in forms:
                        index.setdefault(form.lower(), (attr, value))
            # Longest forms first, so "long sleeve" wins over "long" and "off-white" over "white".
            alternatives = sorted(index, key=len, reverse=True)
            pattern = re.compile(
                r"(?<![\w-])(" + "|".join(re.escape(a) for a in alternatives) + r")(?![\w-])", re.IGNORECASE
            ) if alternatives else re.compile(r"(?!x)x")
            out[category] = (pattern, index)
        return out

    def find_mentions(self, text: str, category: str) -> list[Mention]:
        """Attribute values named in ``text``, using the surface forms of the category's attributes."""
        if category not in self.categories:
            return []
        pattern, index = self._patterns[category]
        mentions = []
        for match in pattern.finditer(text):
            attr, value = index[match.group(1).lower()]
            mentions.append(Mention(start=match.start(), end=match.end(), attribute=attr, value=value,
                                    surface=match.group(1)))
        return mentions

    # --- construction ------------------------------------------------------------------------
    def restrict(self, categories: dict[str, list[str]], values: dict[str, dict[str, list[str]]]) -> "AttributeSchema":
        """This schema cut down to the given categories (→ subcategories) and per-category attribute values.

        ``values[category][attribute]`` lists the values a catalog uses; attributes are kept in the
        category's order and each value keeps all its surface forms.
        """
        used: dict[str, set[str]] = {}
        cats: dict[str, CategoryDef] = {}
        for cat, subs in categories.items():
            attrs = [a for a in self.attributes_for(cat) if a in values.get(cat, {})]
            cats[cat] = CategoryDef(subcategories=list(subs), attributes=attrs)
            for attr in attrs:
                used.setdefault(attr, set()).update(values[cat][attr])
        attrs_out = {}
        for attr, definition in self.attributes.items():
            if attr in used:
                missing = used[attr] - set(definition.values)
                if missing:
                    raise ValueError(f"attribute {attr!r}: values {sorted(missing)} are not in the knowledge base")
                attrs_out[attr] = AttributeDef(
                    visible=definition.visible,
                    values={v: forms for v, forms in definition.values.items() if v in used[attr]},
                )
        return AttributeSchema(attributes=attrs_out, categories=cats)


def load_knowledge_base() -> AttributeSchema:
    """The built-in fashion knowledge shipped with the package (fashion_knowledge.yaml)."""
    text = resources.files("fashionvlp.data").joinpath("fashion_knowledge.yaml").read_text()
    return AttributeSchema.model_validate(yaml.safe_load(text))
