"""What the converters share: a schema built from the categories a dataset has, and attribute mining."""

from __future__ import annotations

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
