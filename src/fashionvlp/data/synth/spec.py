"""What the synthetic catalog can contain: 7 categories × 2 subcategories, and per subcategory the
attribute values the renderer can show. Values and surface forms come from the knowledge base
(``fashion_knowledge.yaml``); this file adds only what rendering and outfit rules need.

Products of one subcategory share a shape family and differ only in fine-grained attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Colour value → (surface form, sRGB) shades. The text names the shade the image shows most of the time.
COLOR_SHADES: dict[str, list[tuple[str, tuple[int, int, int]]]] = {
    "black": [("black", (28, 28, 31)), ("jet black", (14, 14, 16)), ("onyx", (42, 42, 48))],
    "white": [("white", (244, 244, 242)), ("ivory", (241, 235, 215)), ("off-white", (236, 233, 224)),
              ("cream", (240, 228, 198))],
    "red": [("red", (200, 32, 36)), ("crimson", (168, 20, 46)), ("scarlet", (228, 44, 26)),
            ("burgundy", (112, 22, 42))],
    "blue": [("blue", (42, 92, 192)), ("navy", (26, 36, 82)), ("cobalt", (18, 70, 182)), ("indigo", (52, 42, 122))],
    "green": [("green", (42, 142, 72)), ("olive", (108, 110, 42)), ("khaki", (148, 140, 92)),
              ("emerald", (20, 128, 90))],
    "yellow": [("yellow", (242, 210, 44)), ("mustard", (208, 160, 32))],
    "pink": [("pink", (240, 150, 182)), ("blush", (234, 192, 190)), ("rose", (218, 110, 140))],
    "purple": [("purple", (120, 52, 140)), ("lilac", (192, 162, 222)), ("violet", (140, 72, 200))],
    "brown": [("brown", (110, 70, 42)), ("tan", (190, 150, 102)), ("camel", (190, 140, 82)),
              ("chocolate", (80, 46, 26))],
    "grey": [("grey", (130, 130, 132)), ("charcoal", (60, 62, 66)), ("heather grey", (166, 166, 170))],
    "beige": [("beige", (220, 200, 166)), ("sand", (210, 190, 150)), ("nude", (226, 190, 162))],
    "orange": [("orange", (240, 130, 32)), ("rust", (180, 82, 40))],
}
ALL_COLORS = list(COLOR_SHADES)
NEUTRAL_COLORS = {"black", "white", "grey", "beige", "brown"}

_TOP_MATERIALS = ["cotton", "jersey", "linen", "polyester", "viscose"]


@dataclass(frozen=True)
class SubcategorySpec:
    category: str
    name: str
    shape: str                      # renderer family
    nouns: tuple[str, ...]          # how titles name the product
    formality: str                  # "casual" | "dressy", for the outfit compatibility rule
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _spec(category, name, shape, nouns, formality, **attributes) -> SubcategorySpec:
    attrs = {"color": tuple(ALL_COLORS)}
    attrs.update({k: tuple(v) for k, v in attributes.items()})
    return SubcategorySpec(category, name, shape, tuple(nouns), formality, attrs)


_DRESS_COMMON = dict(
    pattern=["solid", "striped", "checked", "dotted", "floral", "geometric", "colour-block"],
    sleeve_length=["sleeveless", "short sleeve", "three-quarter sleeve", "long sleeve"],
    neckline=["crew neck", "v-neck", "square neck", "scoop neck", "halter", "off-the-shoulder"],
    silhouette=["a-line", "bodycon", "shift", "fit-and-flare"],
    material=["cotton", "linen", "silk", "satin", "viscose", "jersey", "crepe", "polyester"],
)
_SKIRT_COMMON = dict(
    pattern=["solid", "striped", "checked", "dotted", "floral", "animal"],
    silhouette=["a-line", "pleated", "straight", "tiered", "wrap"],
    waistline=["high waist", "natural waist", "low waist"],
    material=["cotton", "denim", "wool", "satin", "viscose", "leather", "tweed"],
)

SUBCATEGORIES: tuple[SubcategorySpec, ...] = (
    _spec("DRESSES", "short dresses", "dress", ["dress", "mini dress", "short dress", "day dress"], "casual",
          length=["mini", "above-the-knee", "knee-length"], **_DRESS_COMMON),
    _spec("DRESSES", "long dresses", "dress", ["dress", "maxi dress", "long dress", "gown"], "dressy",
          length=["midi", "maxi", "floor-length"], **_DRESS_COMMON),
    _spec("TOPS", "t-shirts", "tshirt", ["t-shirt", "tee", "t-shirt"], "casual",
          pattern=["solid", "striped", "dotted", "geometric", "camouflage", "colour-block"],
          sleeve_length=["short sleeve", "long sleeve"],
          neckline=["crew neck", "v-neck", "scoop neck"],
          silhouette=["slim", "oversized"], material=_TOP_MATERIALS),
    _spec("TOPS", "blouses", "blouse", ["blouse", "top"], "dressy",
          pattern=["solid", "striped", "dotted", "floral", "checked"],
          sleeve_length=["sleeveless", "short sleeve", "three-quarter sleeve", "long sleeve"],
          neckline=["v-neck", "boat neck", "square neck", "scoop neck", "crew neck"],
          silhouette=["slim", "oversized"], material=["silk", "satin", "viscose", "crepe", "cotton", "linen"]),
    _spec("SHIRTS", "shirts", "shirt", ["shirt", "button-down shirt", "oxford shirt"], "dressy",
          pattern=["solid", "striped", "checked", "dotted", "floral"],
          sleeve_length=["short sleeve", "long sleeve"], closure=["buttoned"],
          silhouette=["slim", "oversized"], material=["cotton", "linen", "denim", "silk", "viscose"]),
    _spec("SHIRTS", "overshirts", "overshirt", ["overshirt", "shirt jacket", "shacket"], "casual",
          pattern=["solid", "checked", "camouflage", "colour-block"],
          sleeve_length=["short sleeve", "long sleeve"], closure=["buttoned", "zip"],
          silhouette=["slim", "oversized"], material=["wool", "corduroy", "denim", "cotton", "tweed"]),
    _spec("PANTS", "trousers", "trousers", ["trousers", "pants", "slacks"], "dressy",
          pattern=["solid", "striped", "checked"],
          silhouette=["slim", "straight", "wide-leg", "flared", "tapered"],
          waistline=["high waist", "natural waist", "low waist"], closure=["buttoned", "zip"],
          material=["wool", "cotton", "linen", "denim", "corduroy", "viscose"]),
    _spec("PANTS", "sweatpants", "sweatpants", ["sweatpants", "joggers", "track pants"], "casual",
          pattern=["solid", "striped", "camouflage", "colour-block"],
          silhouette=["tapered", "straight", "wide-leg"],
          waistline=["high waist", "natural waist"], closure=["drawstring", "pull-on"],
          material=["cotton", "jersey", "knit", "polyester"]),
    _spec("SKIRTS", "mini skirts", "skirt", ["skirt", "mini skirt", "miniskirt"], "casual",
          length=["micro", "mini"], **_SKIRT_COMMON),
    _spec("SKIRTS", "midi skirts", "skirt", ["skirt", "midi skirt"], "dressy",
          length=["knee-length", "midi"], **_SKIRT_COMMON),
    _spec("SHOES", "sneakers", "sneaker", ["sneakers", "trainers", "low-top sneakers"], "casual",
          heel=["flat", "platform"], toe=["round toe", "square toe"], closure=["lace-up", "slip-on"],
          material=["leather", "suede", "canvas", "knit"]),
    _spec("SHOES", "heels", "heel", ["heels", "pumps", "sandals", "court shoes"], "dressy",
          heel=["low heel", "block heel", "stiletto", "wedge", "platform"],
          toe=["round toe", "pointed toe", "square toe", "open toe"], closure=["slip-on", "buckle", "lace-up"],
          material=["leather", "suede", "satin"]),
    _spec("BAGS", "tote bags", "tote", ["tote", "tote bag", "shopper"], "casual",
          pattern=["solid", "striped", "checked", "animal", "colour-block"],
          strap=["top handle", "shoulder strap"], closure=["zip", "buckle"],
          material=["canvas", "leather", "cotton", "suede"]),
    _spec("BAGS", "shoulder bags", "shoulder_bag", ["shoulder bag", "bag", "handbag"], "dressy",
          pattern=["solid", "animal", "checked", "colour-block"],
          strap=["shoulder strap", "chain strap", "crossbody strap", "top handle"], closure=["zip", "buckle"],
          material=["leather", "suede", "satin"]),
)
SUBCATEGORY_BY_NAME = {s.name: s for s in SUBCATEGORIES}

# Outfit slots: which categories fill which role. A dress fills top and bottom at once.
OUTFIT_ROLES = {"top": ("TOPS", "SHIRTS"), "bottom": ("PANTS", "SKIRTS"), "shoes": ("SHOES",), "bag": ("BAGS",)}

# FashionIQ's three groups, mapped onto our categories.
TRIPLET_GROUPS = {"DRESSES": "dress", "SHIRTS": "shirt", "TOPS": "toptee"}

# Attributes the images show but titles leave out more often (KG-FLIP §1, partial alignment).
UNDERWRITTEN = {"waistline", "closure", "toe", "strap"}

# Written but never visible.
BRAND_WORDS = ["Maison Lune", "Atelier Nord", "Kestrel & Co", "Verano", "Studio Halden", "Orla Vey",
               "Brume", "Castellane", "Nori Kaji", "Fenwick Row", "Alba Sud", "Mira Lenz"]
ORIGINS = ["Made in Portugal.", "Made in Italy.", "Made in Turkey.", "Made in India.", "Made in Romania.",
           "Designed in Copenhagen.", "Made in Japan."]
CARE = ["Machine wash cold.", "Dry clean only.", "Hand wash.", "Machine wash at 30°C.", "Do not tumble dry.",
        "Cool iron if needed."]
FIT_NOTES = ["True to size.", "Runs small; consider sizing up.", "Relaxed fit.", "Model wears a size S.",
             "Regular fit.", "Fits large; consider sizing down."]
MARKETING = ["An effortless wardrobe staple.", "Made to be worn on repeat.", "A modern take on a classic.",
             "Easy to dress up or down.", "A season-spanning essential.", "Designed for everyday ease.",
             "A quietly confident piece.", "Pairs with everything in your closet."]
SEASONS = ["SS24", "AW24", "SS25", "AW25", "Resort 25"]
