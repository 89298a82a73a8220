"""Pillow + NumPy studio-shot renderer for the synthetic catalog.

Every product is drawn from its attributes: the garment outline comes from the subcategory's shape
family and its silhouette / length / sleeve / neckline / heel / strap values, the fabric from its colour
shade and pattern, and each view from a pose (position, scale, rotation), a studio background and
lighting. Geometry is in a local unit square (u right, v down) mapped to the canvas by the pose, so a
pattern turns with the garment. Rendering is pure: the same ``Look`` and ``Pose`` give the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SUPERSAMPLE = 2
SKIN = (226, 186, 160)
METAL = (196, 178, 120)
Point = tuple[float, float]


@dataclass(frozen=True)
class Look:
    """Everything about a product that is the same in all of its views."""

    shape: str
    attributes: dict[str, str]
    base_rgb: tuple[int, int, int]
    secondary_rgb: tuple[int, int, int]
    pattern_scale: float      # period in local units
    pattern_angle: float      # radians
    pattern_seed: int
    sole_rgb: tuple[int, int, int] = (238, 236, 230)


@dataclass(frozen=True)
class Pose:
    view: str                 # front | back | detail | alternate
    scale: float              # fraction of the canvas the unit square spans
    rotation: float           # radians
    offset: Point             # canvas-fraction shift of the anchor from the centre
    anchor: Point = (0.5, 0.5)
    flip: bool = False
    background: tuple[int, int, int] = (244, 244, 242)
    light: float = 1.0        # overall brightness
    light_angle: float = 0.0  # direction the light comes from
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass
class Shape:
    body: list[list[Point]] = field(default_factory=list)      # fabric
    inner: list[list[Point]] = field(default_factory=list)     # inside of the garment, seen through openings
    skin: list[list[Point]] = field(default_factory=list)
    lines: list[tuple[list[Point], float, str]] = field(default_factory=list)   # (points, width, colour role)
    dots: list[tuple[Point, float, str]] = field(default_factory=list)          # (centre, radius, colour role)
    solids: list[tuple[list[Point], str]] = field(default_factory=list)         # flat-coloured parts (soles…)


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 14) -> list[Point]:
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in np.linspace(a0, a1, n)]


def _mirror(points: list[Point]) -> list[Point]:
    return [(1.0 - x, y) for x, y in points]


# --- garments ----------------------------------------------------------------------------------------
_SLEEVE_LENGTH = {"sleeveless": 0.0, "short sleeve": 0.12, "elbow-length": 0.2, "three-quarter sleeve": 0.28,
                  "long sleeve": 0.4}
_DRESS_HEM = {"micro": 0.5, "mini": 0.58, "above-the-knee": 0.67, "knee-length": 0.76, "midi": 0.86,
              "maxi": 0.95, "floor-length": 0.99}
_DRESS_SILHOUETTE = {"a-line": (0.15, 0.31), "bodycon": (0.135, 0.15), "shift": (0.19, 0.21),
                     "fit-and-flare": (0.125, 0.37)}


def _upper(shape: Shape, a: dict[str, str], view: str, *, hem: float, waist_hw: float, hem_hw: float,
           shoulder_hw: float, waist_y: float = 0.42, neck_hw: float = 0.06, flare_from_waist: bool = False) -> None:
    neckline = a.get("neckline", "crew neck")
    sleeve = a.get("sleeve_length", "long sleeve")
    top_y, shoulder_y, armpit_y = 0.1, 0.14, 0.29
    sleeveless = sleeve == "sleeveless" or neckline == "halter"
    sh = shoulder_hw - (0.045 if sleeveless else 0.0)
    if neckline == "boat neck" and view != "back":
        neck_hw = 0.12
    if neckline == "off-the-shoulder":
        top = [(0.5 - shoulder_hw - 0.02, 0.19)]
        armpit = (0.5 - shoulder_hw + 0.005, armpit_y)
        left = top + [armpit]
        sleeve_root = (top[0], armpit)
    elif neckline == "halter":
        left = [(0.5 - 0.04, top_y - 0.01), (0.5 - sh + 0.03, armpit_y - 0.02)]
        sleeve_root = None
    else:
        left = [(0.5 - neck_hw, top_y), (0.5 - sh, shoulder_y), (0.5 - sh + (0.02 if sleeveless else 0.005), armpit_y)]
        sleeve_root = ((0.5 - sh, shoulder_y), left[-1])
    if flare_from_waist:
        lower = [(0.5 - waist_hw, waist_y), (0.5 - waist_hw - 0.03, waist_y + 0.06), (0.5 - hem_hw, hem)]
    else:
        lower = [(0.5 - waist_hw, waist_y), (0.5 - hem_hw, hem)]
    left_side = left + lower
    body = left_side + list(reversed(_mirror(left_side)))
    shape.body.append(body)
    # Sleeves hang outwards and down from the shoulder seam.
    length = _SLEEVE_LENGTH.get(sleeve, 0.4)
    if length > 0 and sleeve_root is not None and neckline != "halter":
        (sx, sy), (ax, ay) = sleeve_root
        d = (-0.36, 0.93)
        widen = 0.012
        sleeve_poly = [(sx, sy), (ax, ay), (ax + d[0] * length + widen, ay + d[1] * length),
                       (sx + d[0] * length - widen, sy + d[1] * length + 0.02)]
        shape.body.append(sleeve_poly)
        shape.body.append(_mirror(sleeve_poly))
        cuff = [sleeve_poly[2], sleeve_poly[3]]
        shape.lines.append((cuff, 0.012, "dark"))
        shape.lines.append((_mirror(cuff), 0.012, "dark"))
    # The neckline is the inside of the back, seen through the opening.
    if view == "back":
        if neckline not in ("off-the-shoulder", "halter"):
            shape.inner.append(_arc(0.5, top_y, neck_hw, 0.02, 0, math.pi))
        return
    if neckline == "crew neck":
        opening = _arc(0.5, top_y, neck_hw, 0.045, 0, math.pi)
    elif neckline == "v-neck":
        opening = [(0.5 - neck_hw, top_y), (0.5 + neck_hw, top_y), (0.5, top_y + 0.15)]
    elif neckline == "scoop neck":
        opening = _arc(0.5, top_y, neck_hw + 0.035, 0.11, 0, math.pi)
    elif neckline == "square neck":
        opening = [(0.5 - neck_hw - 0.025, top_y), (0.5 + neck_hw + 0.025, top_y),
                   (0.5 + neck_hw + 0.025, top_y + 0.09), (0.5 - neck_hw - 0.025, top_y + 0.09)]
    elif neckline == "boat neck":
        opening = _arc(0.5, top_y, neck_hw, 0.028, 0, math.pi)
    elif neckline == "halter":
        opening = _arc(0.5, top_y - 0.01, 0.03, 0.03, 0, math.pi)
        shape.skin.append([(0.5 - 0.04, top_y + 0.01), (0.5 - sh + 0.03, armpit_y - 0.02), (0.5 - sh + 0.01, 0.16),
                           (0.5 - 0.06, 0.1)])
    elif neckline == "off-the-shoulder":
        shape.lines.append(([(0.5 - shoulder_hw - 0.02, 0.19), (0.5 + shoulder_hw + 0.02, 0.19)], 0.02, "dark"))
        return
    else:
        opening = _arc(0.5, top_y, neck_hw, 0.045, 0, math.pi)
    shape.inner.append(opening)
    shape.lines.append((opening + [opening[0]] if neckline in ("v-neck", "square neck") else opening, 0.01, "dark"))


def _dress(a: dict[str, str], view: str) -> Shape:
    s = Shape()
    waist_hw, hem_hw = _DRESS_SILHOUETTE.get(a.get("silhouette", "a-line"), (0.15, 0.3))
    hem = _DRESS_HEM.get(a.get("length", "knee-length"), 0.76)
    hem_hw *= 0.6 + 0.4 * (hem - 0.42) / 0.57 if a.get("silhouette") != "bodycon" else 1.0
    _upper(s, a, view, hem=hem, waist_hw=waist_hw, hem_hw=hem_hw, shoulder_hw=0.17, waist_y=0.4,
           flare_from_waist=a.get("silhouette") == "fit-and-flare")
    if a.get("silhouette") in ("fit-and-flare", "a-line"):
        s.lines.append(([(0.5 - waist_hw, 0.4), (0.5 + waist_hw, 0.4)], 0.008, "dark"))
    return s


def _top(a: dict[str, str], view: str, *, hem: float, kind: str) -> Shape:
    s = Shape()
    oversized = a.get("silhouette") == "oversized"
    shoulder = 0.245 if oversized else 0.195
    waist = 0.235 if oversized else 0.165
    _upper(s, a, view, hem=hem, waist_hw=waist, hem_hw=waist + 0.01, shoulder_hw=shoulder)
    s.lines.append(([(0.5 - waist - 0.01, hem - 0.015), (0.5 + waist + 0.01, hem - 0.015)], 0.006, "dark"))
    if kind in ("shirt", "overshirt"):
        if view != "back":
            collar_l = [(0.5 - 0.065, 0.085), (0.5 - 0.005, 0.2), (0.5 - 0.11, 0.17)]
            s.solids.append((collar_l, "light"))
            s.solids.append((_mirror(collar_l), "light"))
            if a.get("closure") == "zip":
                s.lines.append(([(0.5, 0.2), (0.5, hem)], 0.014, "metal"))
                s.dots.append(((0.5, 0.23), 0.014, "metal"))
            else:
                s.lines.append(([(0.5, 0.2), (0.5, hem)], 0.006, "dark"))
                for y in np.linspace(0.26, hem - 0.05, 5):
                    s.dots.append(((0.5, float(y)), 0.011, "light"))
            if kind == "overshirt":
                for cx in (0.39, 0.61):
                    s.lines.append(([(cx - 0.05, 0.22), (cx + 0.05, 0.22), (cx + 0.05, 0.32), (cx, 0.34),
                                     (cx - 0.05, 0.32), (cx - 0.05, 0.22)], 0.008, "dark"))
        else:
            s.solids.append(([(0.5 - 0.07, 0.085), (0.5 + 0.07, 0.085), (0.5 + 0.07, 0.12), (0.5 - 0.07, 0.12)],
                             "light"))
    return s


_LEG = {  # silhouette → (hip half-width, knee leg width, hem leg width)
    "slim": (0.17, 0.085, 0.07), "straight": (0.17, 0.1, 0.1), "wide-leg": (0.18, 0.14, 0.165),
    "flared": (0.17, 0.08, 0.15), "tapered": (0.19, 0.095, 0.06),
}
_RISE_WAIST_Y = {"high waist": 0.02, "natural waist": 0.08, "low waist": 0.13}


def _pants(a: dict[str, str], view: str, *, sweat: bool) -> Shape:
    s = Shape()
    hip, knee_w, hem_w = _LEG.get(a.get("silhouette", "straight"), _LEG["straight"])
    waist_y = _RISE_WAIST_Y.get(a.get("waistline", "natural waist"), 0.08)
    crotch_y, knee_y, hem_y = 0.35, 0.66, 0.98
    waist_hw = 0.15
    band = 0.05 if sweat else 0.04
    gap = 0.012
    left = [(0.5 - waist_hw, waist_y), (0.5 - hip, crotch_y - 0.06), (0.5 - gap - 2 * knee_w + 0.02, knee_y),
            (0.5 - gap - 2 * hem_w + 0.03, hem_y), (0.5 - gap, hem_y), (0.5 - gap + 0.005, crotch_y + 0.05),
            (0.5, crotch_y)]
    s.body.append(left + list(reversed(_mirror(left[:-1]))))
    s.lines.append(([(0.5 - waist_hw, waist_y + band), (0.5 + waist_hw, waist_y + band)], 0.008, "dark"))
    closure = a.get("closure")
    if view != "back":
        if closure in ("buttoned", "zip"):
            s.lines.append(([(0.5, waist_y + band), (0.5, crotch_y - 0.04), (0.52, crotch_y - 0.02)], 0.006, "dark"))
            if closure == "buttoned":
                s.dots.append(((0.5, waist_y + band / 2), 0.013, "metal"))
            else:
                s.lines.append(([(0.5, waist_y + band + 0.005), (0.5, crotch_y - 0.05)], 0.01, "metal"))
                s.dots.append(((0.5, waist_y + band + 0.02), 0.01, "metal"))
        elif closure == "drawstring":
            for dx in (-0.025, 0.025):
                s.lines.append(([(0.5 + dx, waist_y + band / 2), (0.5 + dx * 1.6, waist_y + band + 0.13)], 0.009,
                                "light"))
                s.dots.append(((0.5 + dx * 1.6, waist_y + band + 0.13), 0.01, "light"))
        elif closure == "pull-on":
            for x in np.linspace(0.5 - waist_hw + 0.02, 0.5 + waist_hw - 0.02, 9):
                s.lines.append(([(float(x), waist_y + 0.008), (float(x), waist_y + band - 0.008)], 0.005, "dark"))
    if sweat:
        for side in (left, _mirror(left)):
            xs = sorted([side[3][0], side[4][0]])
            s.solids.append(([(xs[0], hem_y - 0.06), (xs[1], hem_y - 0.06), (xs[1], hem_y), (xs[0], hem_y)], "dark"))
    return s


_SKIRT_HEM = {"micro": 0.36, "mini": 0.48, "knee-length": 0.74, "midi": 0.9}
_SKIRT_BAND = {"high waist": 0.09, "natural waist": 0.055, "low waist": 0.03}


def _skirt(a: dict[str, str], view: str) -> Shape:
    s = Shape()
    hem = _SKIRT_HEM.get(a.get("length", "mini"), 0.5)
    sil = a.get("silhouette", "a-line")
    band = _SKIRT_BAND.get(a.get("waistline", "natural waist"), 0.055)
    waist_hw = 0.17 if a.get("waistline") == "low waist" else 0.145
    top = 0.06
    depth = hem - top
    hem_hw = {"a-line": 0.3, "pleated": 0.31, "straight": 0.185, "tiered": 0.33, "wrap": 0.27}.get(sil, 0.28)
    hem_hw = waist_hw + (hem_hw - waist_hw) * min(1.0, 0.45 + depth)
    left = [(0.5 - waist_hw, top), (0.5 - waist_hw - 0.02, top + band + 0.02), (0.5 - hem_hw, hem)]
    s.body.append(left + list(reversed(_mirror(left))))
    s.lines.append(([(0.5 - waist_hw, top + band), (0.5 + waist_hw, top + band)], 0.008, "dark"))
    if sil == "pleated":
        for k in np.linspace(-0.8, 0.8, 7):
            s.lines.append(([(0.5 + k * waist_hw, top + band), (0.5 + k * hem_hw, hem)], 0.006, "dark"))
    elif sil == "tiered":
        for f in (0.36, 0.68):
            y = top + band + f * (hem - top - band)
            hw = waist_hw + (hem_hw - waist_hw) * (y - top) / depth
            s.lines.append(([(0.5 - hw, y), (0.5 + hw, y)], 0.01, "dark"))
    elif sil == "wrap" and view != "back":
        s.lines.append(([(0.5 + waist_hw - 0.02, top + band), (0.5 - hem_hw * 0.3, hem)], 0.01, "dark"))
        s.lines.append(([(0.5 + waist_hw, top + band / 2), (0.5 + waist_hw + 0.06, top + band + 0.12)], 0.012,
                        "light"))
    return s


def _sneaker(a: dict[str, str], view: str) -> Shape:
    s = Shape()
    ground = 0.82
    sole_h = 0.17 if a.get("heel") == "platform" else 0.08
    top_sole = ground - sole_h
    toe = a.get("toe", "round toe")
    front = [(0.1, top_sole), (0.05, top_sole - 0.06), (0.08, top_sole - 0.13)] if toe == "round toe" else \
        [(0.06, top_sole), (0.055, top_sole - 0.14)]
    upper = front + [(0.3, top_sole - 0.2), (0.55, top_sole - 0.3), (0.72, top_sole - 0.36), (0.9, top_sole - 0.33),
                     (0.93, top_sole)]
    s.body.append(upper)
    s.solids.append(([(0.04, top_sole), (0.95, top_sole), (0.95, ground), (0.07, ground), (0.035, top_sole + 0.03)],
                     "sole"))
    s.inner.append(_arc(0.8, top_sole - 0.34, 0.09, 0.025, 0, 2 * math.pi))
    if a.get("closure") == "lace-up" and view != "back":
        for k in range(5):
            x = 0.42 + 0.055 * k
            y = top_sole - 0.22 - 0.025 * k
            s.lines.append(([(x, y - 0.03), (x + 0.05, y + 0.02)], 0.012, "light"))
            s.lines.append(([(x, y + 0.02), (x + 0.05, y - 0.03)], 0.012, "light"))
    elif view != "back":
        s.solids.append(([(0.45, top_sole - 0.26), (0.6, top_sole - 0.32), (0.63, top_sole - 0.27),
                          (0.48, top_sole - 0.2)], "dark"))
    s.lines.append(([(0.1, top_sole - 0.04), (0.9, top_sole - 0.04)], 0.006, "dark"))
    return s


_HEEL_HEIGHT = {"flat": 0.02, "low heel": 0.12, "block heel": 0.3, "stiletto": 0.34, "wedge": 0.28,
                "platform": 0.36}


def _heel(a: dict[str, str], view: str) -> Shape:
    s = Shape()
    ground = 0.84
    heel = a.get("heel", "block heel")
    h = _HEEL_HEIGHT.get(heel, 0.3)
    platform = 0.07 if heel == "platform" else 0.0
    seat_y = ground - h
    ball = (0.34, ground - platform)
    toe = a.get("toe", "round toe")
    if toe == "pointed toe":
        tip = [(0.01, ball[1] - 0.03), (0.12, ball[1] - 0.1)]
    elif toe == "square toe":
        tip = [(0.08, ball[1]), (0.08, ball[1] - 0.1)]
    else:
        tip = [(0.1, ball[1]), (0.06, ball[1] - 0.05), (0.1, ball[1] - 0.1)]
    upper = [ball, *tip, (0.3, ball[1] - 0.14), (0.42, ball[1] - 0.16), (0.62, seat_y - 0.1), (0.8, seat_y - 0.2),
             (0.86, seat_y - 0.16), (0.86, seat_y)]
    s.body.append(upper)
    s.inner.append([(0.42, ball[1] - 0.16), (0.62, seat_y - 0.1), (0.8, seat_y - 0.2), (0.62, seat_y - 0.14),
                    (0.45, ball[1] - 0.18)])
    if toe == "open toe":
        s.skin.append(_arc(tip[0][0] + 0.02, ball[1] - 0.05, 0.035, 0.03, 0, 2 * math.pi))
    sole = [ball, (0.86, seat_y), (0.86, seat_y + 0.015), (0.34, ball[1] + 0.015)]
    s.solids.append((sole, "dark"))
    if platform:
        s.solids.append(([(0.06, ball[1]), (0.4, ball[1]), (0.44, ground), (0.08, ground)], "dark"))
    if heel == "wedge":
        s.solids.append(([(0.38, ball[1]), (0.86, seat_y), (0.86, ground), (0.5, ground)], "dark"))
    elif heel == "stiletto":
        s.solids.append(([(0.8, seat_y), (0.86, seat_y), (0.835, ground), (0.826, ground)], "dark"))
    elif heel in ("block heel", "platform"):
        s.solids.append(([(0.76, seat_y), (0.86, seat_y), (0.85, ground), (0.78, ground)], "dark"))
    elif heel == "low heel":
        s.solids.append(([(0.78, seat_y), (0.86, seat_y), (0.855, ground), (0.79, ground)], "dark"))
    closure = a.get("closure")
    if closure == "buckle":
        s.lines.append(([(0.86, seat_y - 0.2), (0.7, seat_y - 0.3), (0.56, seat_y - 0.2)], 0.025, "base"))
        s.dots.append(((0.7, seat_y - 0.3), 0.018, "metal"))
    elif closure == "lace-up" and view != "back":
        for k in range(3):
            y = ball[1] - 0.19 - 0.05 * k
            x = 0.47 + 0.05 * k
            s.lines.append(([(x - 0.04, y), (x + 0.04, y - 0.03)], 0.01, "light"))
    return s


def _tote(a: dict[str, str], view: str) -> Shape:
    s = Shape()
    s.body.append([(0.2, 0.36), (0.8, 0.36), (0.86, 0.9), (0.14, 0.9)])
    if a.get("strap") == "shoulder strap":
        for x0, x1 in ((0.28, 0.44), (0.56, 0.72)):
            s.lines.append((_arc((x0 + x1) / 2, 0.36, (x1 - x0) / 2 + 0.06, 0.34, math.pi, 2 * math.pi), 0.028, "dark"))
    else:
        for x0, x1 in ((0.3, 0.44), (0.56, 0.7)):
            s.lines.append((_arc((x0 + x1) / 2, 0.36, (x1 - x0) / 2, 0.15, math.pi, 2 * math.pi), 0.03, "dark"))
    if view != "back":
        if a.get("closure") == "zip":
            s.lines.append(([(0.22, 0.4), (0.78, 0.4)], 0.012, "metal"))
            s.dots.append(((0.7, 0.42), 0.014, "metal"))
        else:
            s.solids.append(([(0.46, 0.36), (0.54, 0.36), (0.54, 0.5), (0.46, 0.5)], "dark"))
            s.dots.append(((0.5, 0.47), 0.02, "metal"))
    return s


def _shoulder_bag(a: dict[str, str], view: str) -> Shape:
    s = Shape()
    body = [(0.18, 0.48), (0.82, 0.48), (0.84, 0.86), (0.8, 0.9), (0.2, 0.9), (0.16, 0.86)]
    s.body.append(body)
    strap = a.get("strap", "shoulder strap")
    if strap == "chain strap":
        for t in np.linspace(math.pi, 2 * math.pi, 19):
            s.dots.append(((0.5 + 0.32 * math.cos(t), 0.48 + 0.38 * math.sin(t)), 0.016, "metal"))
    elif strap == "crossbody strap":
        s.lines.append(([(0.2, 0.48), (0.3, -0.2)], 0.014, "dark"))
        s.lines.append(([(0.8, 0.48), (0.7, -0.2)], 0.014, "dark"))
    elif strap == "top handle":
        s.lines.append((_arc(0.5, 0.48, 0.14, 0.14, math.pi, 2 * math.pi), 0.03, "dark"))
    else:
        s.lines.append((_arc(0.5, 0.48, 0.3, 0.32, math.pi, 2 * math.pi), 0.028, "dark"))
    if view != "back":
        if a.get("closure") == "buckle":
            s.solids.append(([(0.17, 0.48), (0.83, 0.48), (0.8, 0.66), (0.5, 0.72), (0.2, 0.66)], "dark"))
            s.solids.append(([(0.46, 0.66), (0.54, 0.66), (0.54, 0.74), (0.46, 0.74)], "metal"))
        else:
            s.lines.append(([(0.2, 0.52), (0.8, 0.52)], 0.012, "metal"))
            s.dots.append(((0.74, 0.545), 0.015, "metal"))
    return s


def build_shape(look: Look, view: str) -> Shape:
    a = look.attributes
    if look.shape == "dress":
        return _dress(a, view)
    if look.shape in ("tshirt", "blouse", "shirt", "overshirt"):
        hem = {"tshirt": 0.58, "blouse": 0.56, "shirt": 0.64, "overshirt": 0.68}[look.shape]
        return _top(a, view, hem=hem, kind=look.shape)
    if look.shape in ("trousers", "sweatpants"):
        return _pants(a, view, sweat=look.shape == "sweatpants")
    if look.shape == "skirt":
        return _skirt(a, view)
    if look.shape == "sneaker":
        return _sneaker(a, view)
    if look.shape == "heel":
        return _heel(a, view)
    if look.shape == "tote":
        return _tote(a, view)
    if look.shape == "shoulder_bag":
        return _shoulder_bag(a, view)
    raise ValueError(f"unknown shape family {look.shape!r}")


# Where a detail view zooms in, per shape family.
DETAIL_ANCHORS = {
    "dress": [(0.5, 0.2), (0.5, 0.5)], "tshirt": [(0.5, 0.2), (0.35, 0.35)], "blouse": [(0.5, 0.2), (0.35, 0.35)],
    "shirt": [(0.5, 0.22), (0.35, 0.3)], "overshirt": [(0.5, 0.22), (0.4, 0.3)],
    "trousers": [(0.5, 0.15), (0.35, 0.8)], "sweatpants": [(0.5, 0.15), (0.35, 0.85)],
    "skirt": [(0.5, 0.15), (0.5, 0.4)], "sneaker": [(0.3, 0.6), (0.7, 0.55)], "heel": [(0.25, 0.7), (0.75, 0.6)],
    "tote": [(0.5, 0.4), (0.5, 0.65)], "shoulder_bag": [(0.5, 0.55), (0.5, 0.7)],
}


# --- fabric --------------------------------------------------------------------------------------------
def _cell_hash(i: np.ndarray, j: np.ndarray, seed: int, k: int) -> np.ndarray:
    h = (i.astype(np.int64) * 73856093) ^ (j.astype(np.int64) * 19349663) ^ (seed * 83492791 + k * 2654435761)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).astype(np.float32) / 65535.0


def fabric(look: Look, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """RGB float texture (H, W, 3) in 0..255 for the pattern at local coordinates (u, v)."""
    base = np.asarray(look.base_rgb, np.float32)
    sec = np.asarray(look.secondary_rgb, np.float32)
    pattern = look.attributes.get("pattern", "solid")
    p, ang = look.pattern_scale, look.pattern_angle
    ru = u * math.cos(ang) + v * math.sin(ang)
    rv = -u * math.sin(ang) + v * math.cos(ang)
    if pattern == "solid":
        return np.broadcast_to(base, u.shape + (3,))   # read-only, never written
    out = np.broadcast_to(base, u.shape + (3,)).copy()
    if pattern == "striped":
        m = (np.mod(ru / p, 1.0) < 0.42)
        out[m] = sec
    elif pattern == "checked":
        a = np.mod(ru / p, 1.0) < 0.5
        b = np.mod(rv / p, 1.0) < 0.5
        out[a ^ b] = 0.55 * base + 0.45 * sec
        out[a & b] = sec
    elif pattern == "dotted":
        row = np.floor(rv / p)
        cu = np.mod(ru / p + 0.5 * np.mod(row, 2), 1.0) - 0.5
        cv = np.mod(rv / p, 1.0) - 0.5
        out[cu * cu + cv * cv < 0.22 ** 2] = sec
    elif pattern in ("floral", "animal"):
        q = p * 1.6
        i, j = np.floor(ru / q), np.floor(rv / q)
        cx = (np.mod(ru / q, 1.0) - 0.25 - 0.5 * _cell_hash(i, j, look.pattern_seed, 1))
        cy = (np.mod(rv / q, 1.0) - 0.25 - 0.5 * _cell_hash(i, j, look.pattern_seed, 2))
        r = np.sqrt(cx * cx + cy * cy)
        theta = np.arctan2(cy, cx) + 6.0 * _cell_hash(i, j, look.pattern_seed, 3)
        if pattern == "floral":
            petal = r < 0.24 * (0.55 + 0.45 * np.abs(np.cos(2.5 * theta)))
            out[petal] = sec
            out[r < 0.05] = (232, 196, 60)
        else:
            wobble = 1.0 + 0.3 * np.sin(3 * theta)
            out[(r * wobble > 0.12) & (r * wobble < 0.2)] = 0.25 * base
            out[r * wobble <= 0.12] = 0.8 * base + 0.2 * sec
    elif pattern == "geometric":
        fu, fv = np.mod(ru / p, 1.0), np.mod(rv / p, 1.0)
        parity = np.mod(np.floor(ru / p) + np.floor(rv / p), 2) == 1
        tri = fu > fv
        out[tri & parity] = sec
        out[tri & ~parity] = 0.5 * base + 0.5 * sec
    elif pattern == "camouflage":
        s = look.pattern_seed
        field_ = (np.sin(ru / p * 0.9 + s % 7) + np.sin(rv / p * 0.7 + s % 5) + np.sin((ru + rv) / p * 0.5 + s % 3)
                  + 0.6 * np.sin((ru - 2 * rv) / p * 1.3))
        out[field_ > 0.6] = 0.62 * base
        out[field_ < -0.7] = 0.5 * base + 0.5 * sec
    elif pattern == "colour-block":
        out[ru > 0.5 + 0.15 * math.sin(ang)] = sec
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    return out


# --- composition -------------------------------------------------------------------------------------------
def _role_rgb(role: str, look: Look) -> tuple[int, int, int]:
    base = np.asarray(look.base_rgb, np.float32)
    if role == "dark":
        c = base * 0.55
    elif role == "light":
        c = base * 0.45 + 255 * 0.55 if base.mean() < 150 else base * 0.8
    elif role == "metal":
        c = np.asarray(METAL, np.float32)
    elif role == "sole":
        c = np.asarray(look.sole_rgb, np.float32)
    else:
        c = base
    return tuple(int(x) for x in np.clip(c, 0, 255))


@lru_cache(maxsize=4)
def _canvas_grid(W: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:W, 0:W].astype(np.float32)
    vignette = 1.0 - 0.18 * ((xs / W - 0.5) ** 2 + (ys / W - 0.5) ** 2)
    weave = 1.0 + 0.03 * (_cell_hash(xs.astype(np.int64), ys.astype(np.int64), 7, 9) - 0.5)
    return xs, ys, vignette.astype(np.float32), weave.astype(np.float32)


@lru_cache(maxsize=16)
def _studio(background: tuple[int, int, int], W: int) -> np.ndarray:
    """The empty studio: the background colour under the vignette."""
    return np.asarray(background, np.float32)[None, None, :] * _canvas_grid(W)[2][..., None]


def _extent(shape: Shape) -> tuple[float, float, float, float]:
    pts = [p for poly in shape.body for p in poly] + [p for poly, _ in shape.solids for p in poly]
    pts += [p for line, _, _ in shape.lines for p in line if p[1] > -0.05]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), min(ys), max(xs), max(ys)


def render(look: Look, pose: Pose, size: int) -> Image.Image:
    W = size * SUPERSAMPLE
    shape = build_shape(look, pose.view)
    cos_r, sin_r = math.cos(pose.rotation), math.sin(pose.rotation)
    if pose.view == "detail":
        # Detail shots zoom on a fixed region of the unit square.
        ax, ay = pose.anchor
        span = pose.scale * W
    else:
        # Product shots frame the item: its longer side spans ``scale`` of the canvas.
        x0, y0, x1, y1 = _extent(shape)
        ax, ay = (x0 + x1) / 2, (y0 + y1) / 2
        span = pose.scale * W / max(x1 - x0, y1 - y0, 1e-3)
    cx = W * (0.5 + pose.offset[0])
    cy = W * (0.5 + pose.offset[1])
    flip = -1.0 if pose.flip else 1.0

    def to_canvas(pts: list[Point]) -> list[tuple[float, float]]:
        out = []
        for x, y in pts:
            lx, ly = (x - ax) * span * flip, (y - ay) * span
            out.append((cx + lx * cos_r - ly * sin_r, cy + lx * sin_r + ly * cos_r))
        return out

    mask = Image.new("L", (W, W), 0)
    md = ImageDraw.Draw(mask)
    for poly in shape.body:
        md.polygon(to_canvas(poly), fill=255)

    # Local coordinates of every garment pixel (inverse pose), so the pattern follows the garment. Only
    # the mask's bounding box is textured: outside it the mask is 0 and the fabric never shows.
    xs, ys, vignette, weave = _canvas_grid(W)
    box = mask.getbbox() or (0, 0, 1, 1)
    inside = (slice(box[1], box[3]), slice(box[0], box[2]))
    dx, dy = xs[inside] - cx, ys[inside] - cy
    u = (dx * cos_r + dy * sin_r) / span * flip + ax
    v = (-dx * sin_r + dy * cos_r) / span + ay
    tex = fabric(look, u, v)

    # Studio background with vignette and a soft contact shadow.
    canvas = _studio(pose.background, W).copy()
    m = np.asarray(mask, np.float32) / 255.0
    # The shadow is soft anyway: blurred at a quarter of the resolution, where the blur costs 1/16.
    low = mask.reduce(4).filter(ImageFilter.GaussianBlur(W * 0.005)).resize((W, W), Image.Resampling.BILINEAR)
    shadow = np.asarray(low, np.float32) / 255.0
    shadow = np.roll(shadow, (int(W * 0.015), int(W * 0.01)), axis=(0, 1))
    canvas *= (1.0 - 0.22 * shadow[..., None])

    # Fabric shading: light falls off across the garment, plus a fine weave.
    light_dir = (math.cos(pose.light_angle), math.sin(pose.light_angle))
    ramp = 1.0 + 0.12 * ((xs[inside] / W - 0.5) * light_dir[0] + (ys[inside] / W - 0.5) * light_dir[1])
    canvas[inside] += (tex * (ramp * weave[inside])[..., None] - canvas[inside]) * m[inside][..., None]
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")

    draw = ImageDraw.Draw(img)
    outline = _role_rgb("dark", look)
    for poly in shape.body:
        pts = to_canvas(poly)
        draw.line(pts + [pts[0]], fill=outline, width=max(1, SUPERSAMPLE), joint="curve")
    inner = tuple(int(c * 0.42) for c in look.base_rgb)
    for poly in shape.inner:
        draw.polygon(to_canvas(poly), fill=inner)
    for poly in shape.skin:
        draw.polygon(to_canvas(poly), fill=SKIN)
    for poly, role in shape.solids:
        draw.polygon(to_canvas(poly), fill=_role_rgb(role, look))
    for pts, width, role in shape.lines:
        draw.line(to_canvas(pts), fill=_role_rgb(role, look), width=max(1, int(width * span)), joint="curve")
    for (px, py), r, role in shape.dots:
        (qx, qy), = to_canvas([(px, py)])
        rad = r * span
        draw.ellipse([qx - rad, qy - rad, qx + rad, qy + rad], fill=_role_rgb(role, look))

    # Exposure and colour temperature of this shot, applied after downsampling (a per-channel gain
    # commutes with the box downsampling of the supersampled canvas; only the rounding differs).
    img = img.reduce(SUPERSAMPLE) if img.size[0] == size * SUPERSAMPLE else img.resize((size, size),
                                                                                      Image.Resampling.LANCZOS)
    arr = np.asarray(img, np.float32) * (pose.light * np.asarray(pose.tint, np.float32))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
