from fashionvlp.data.schema import load_knowledge_base
from fashionvlp.data.synth.generate import synthetic_schema


def test_knowledge_base_covers_taxonomy():
    kb = load_knowledge_base()
    assert {"DRESSES", "TOPS", "SHOES", "BAGS", "SKIRTS"} <= set(kb.categories)
    assert "navy" in kb.surface_forms("color", "blue")
    assert kb.attributes["material"].visible is False


def test_find_mentions_prefers_longest_surface_form():
    schema = synthetic_schema()
    text = "Navy long-sleeve V-neck midi dress in off-white polka dot silk"
    found = {(m.attribute, m.value, m.surface) for m in schema.find_mentions(text, "DRESSES")}
    assert ("color", "blue", "Navy") in found
    assert ("sleeve_length", "long sleeve", "long-sleeve") in found
    assert ("neckline", "v-neck", "V-neck") in found
    assert ("color", "white", "off-white") in found
    assert ("pattern", "dotted", "polka dot") in found
    assert ("material", "silk", "silk") in found
    # spans point at the words
    for m in schema.find_mentions(text, "DRESSES"):
        assert text[m.start:m.end] == m.surface


def test_check_attribute_and_substitutes():
    schema = synthetic_schema()
    assert schema.check_attribute("DRESSES", "color", "red") is None
    assert "unknown value 'teal'" in schema.check_attribute("DRESSES", "color", "teal")
    assert "does not apply" in schema.check_attribute("SHOES", "neckline", "v-neck")
    assert "red" not in schema.substitutes("color", "red") and "blue" in schema.substitutes("color", "red")
