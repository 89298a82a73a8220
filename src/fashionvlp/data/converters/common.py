"""What the converters share: a schema built from the categories a dataset has, attribute mining, and reading
a release's JSON files."""

from __future__ import annotations

import json
from pathlib import Path

from fashionvlp.data.catalog_io import CatalogError, RecordError
from fashionvlp.data.schema import AttributeSchema, CategoryDef, load_knowledge_base

# A category the knowledge base does not know still gets the attributes every product has.
GENERIC_ATTRIBUTES = ["color", "pattern", "material"]


def schema_for(categories: dict[str, list[str]]) -> AttributeSchema:
    """The knowledge base's attributes, applied to a dataset's own categories and subcategories."""
    kb = load_knowledge_base()
    cats = {}
    for name, subs in sorted(categories.items()):
        known = kb.categories.get(name.upper())
        cats[name] = CategoryDef(subcategories=sorted(set(subs)),
                                 attributes=list(known.attributes) if known else list(GENERIC_ATTRIBUTES))
    return AttributeSchema(attributes=kb.attributes, categories=cats)


def mine_attributes(schema: AttributeSchema, category: str, *texts: str) -> dict[str, str]:
    """Attribute values named in the texts: the first mention of each attribute wins."""
    found: dict[str, str] = {}
    for text in texts:
        for mention in schema.find_mentions(text or "", category):
            found.setdefault(mention.attribute, mention.value)
    return found


def load_json(path: Path, dataset: str):
    """A release's JSON file; one that does not parse is an error naming it."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise CatalogError([RecordError(str(path), "<file>", f"not valid JSON: {exc}")], context=dataset) from exc
