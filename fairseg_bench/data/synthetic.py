"""The synthetic street-scene benchmark: Cityscapes' 19 classes, both kinds of rarity, in seconds.

Every image is drawn from its own seed, ``SeedSequence([seed, split, index])``, so any index is
generated in O(1) without the others, DataLoader workers share nothing, and the same seed gives
the same bytes on every machine. Drawing is vectorised numpy (painter's algorithm on a label map
and a colour map, then per-class texture, blur and noise): 1,000 images at 64×128 take about 3 s
on one idle core.

The class profile follows Cityscapes' two kinds of rarity (the reason the benchmark exists):

- *image-rare but large*: truck (~10 % of images, ~20 % of the image when present), bus (~9 %),
  train (~5 %), motorcycle (~8 %, with its rider). Oversampling images that contain a class
  (Stochastic TCE, rare-class sampling) has leverage on these.
- *frequent but tiny*: pole (1–2 px wide), traffic light, traffic sign, bicycle (thin wheels and
  frame) appear in many images but cover little of each; image sampling cannot help much there.

Confusable pairs: wall/building (the wall takes the colour of the buildings of its image and
differs only by texture: brick courses instead of windows), terrain/vegetation (similar greens;
vegetation has fine foliage noise, terrain is smooth), rider/person (drawn from the same
distributions; a rider is the figure sitting on a bicycle or motorcycle, so only context tells
them apart). Vehicles share one colour distribution and differ by shape and size. An ego-vehicle
hood band at the bottom is labelled 255 (ignore). Target class-profile ranges are in
``CLASS_PROFILE_RANGES`` (checked by the tests) and ``docs/datasets.md``.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter, zoom

from fairseg_bench.data.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from fairseg_bench.data.normalize import normalize_image
from fairseg_bench.errors import UserError

# Bump when the drawing changes: it is part of the class-index cache key.
GENERATOR_VERSION = 1
IGNORE_INDEX = 255
DEFAULT_SIZE = (64, 128)
DEFAULT_NUM_IMAGES = {"train": 1000, "val": 500}
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}

(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY, PERSON, RIDER,
 CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = range(19)

# Documented target ranges (pixel share among valid pixels, share of images containing the class),
# measured over 1,000 train images at 64×128 and widened for sampling noise at ~300 images.
CLASS_PROFILE_RANGES = {
    "road": ((0.20, 0.40), (0.99, 1.00)),
    "sidewalk": ((0.08, 0.20), (0.99, 1.00)),
    "building": ((0.12, 0.30), (0.95, 1.00)),
    "wall": ((0.005, 0.03), (0.20, 0.45)),
    "fence": ((0.005, 0.03), (0.20, 0.45)),
    "pole": ((0.005, 0.025), (0.80, 1.00)),
    "traffic light": ((0.0005, 0.004), (0.30, 0.60)),
    "traffic sign": ((0.001, 0.006), (0.40, 0.75)),
    "vegetation": ((0.05, 0.15), (0.75, 1.00)),
    "terrain": ((0.01, 0.05), (0.25, 0.55)),
    "sky": ((0.08, 0.22), (0.95, 1.00)),
    "person": ((0.003, 0.02), (0.45, 0.80)),
    "rider": ((0.0005, 0.006), (0.10, 0.30)),
    "car": ((0.03, 0.10), (0.80, 1.00)),
    "truck": ((0.01, 0.035), (0.06, 0.14)),
    "bus": ((0.008, 0.03), (0.05, 0.13)),
    "train": ((0.005, 0.025), (0.025, 0.08)),
    "motorcycle": ((0.001, 0.006), (0.05, 0.12)),
    "bicycle": ((0.001, 0.006), (0.30, 0.60)),
}

# Class -> (texture field, amplitude in 0..255 units). Fields: 0 fine noise, 1 coarse noise,
# 2 window grid, 3 brick courses (horizontal lines), 4 vertical bars, 5 flat.
_TEXTURE = {
    ROAD: (1, 10), SIDEWALK: (3, 10), BUILDING: (2, 30), WALL: (3, 22), FENCE: (4, 40),
    POLE: (5, 0), LIGHT: (5, 0), SIGN: (5, 0), VEGETATION: (0, 30), TERRAIN: (1, 12), SKY: (1, 6),
    PERSON: (0, 6), RIDER: (0, 6), CAR: (5, 0), TRUCK: (5, 0), BUS: (5, 0), TRAIN: (5, 0),
    MOTORCYCLE: (5, 0), BICYCLE: (5, 0),
}
_TEX_KIND = np.full(256, 5, np.intp)
_TEX_AMP = np.zeros(256, np.float32)
for _c, (_kind, _amp) in _TEXTURE.items():
    _TEX_KIND[_c], _TEX_AMP[_c] = _kind, _amp

_VEHICLE_COLOURS = np.array([
    (180, 30, 30), (30, 50, 150), (200, 200, 205), (40, 40, 45), (235, 235, 235),
    (110, 115, 120), (30, 110, 60), (210, 160, 40), (140, 30, 90), (90, 140, 190),
], np.float32)
_BUILDING_COLOURS = np.array([(125, 115, 105), (155, 145, 128), (105, 105, 115), (175, 150, 130),
                              (140, 95, 80)], np.float32)
_SIGN_COLOURS = np.array([(205, 40, 40), (40, 70, 195), (225, 205, 40), (235, 235, 235)], np.float32)
_LAMP_COLOURS = np.array([(255, 40, 30), (40, 255, 90), (255, 200, 30)], np.float32)
_SKIN = np.array((205, 160, 130), np.float32)
_WINDOW = np.array((45, 55, 70), np.float32)
_TYRE = np.array((25, 25, 28), np.float32)


class _Canvas:
    """A label map and a colour map painted back to front; shapes clip at the borders."""

    def __init__(self, h: int, w: int, rng: np.random.Generator):
        self.h, self.w, self.rng = h, w, rng
        self.label = np.full((h, w), SKY, np.uint8)
        self.color = np.zeros((h, w, 3), np.float32)
        self.yy, self.xx = np.mgrid[0:h, 0:w]

    def rect(self, cls, y0, y1, x0, x1, color):
        y0, y1 = max(int(round(y0)), 0), min(int(round(y1)), self.h)
        x0, x1 = max(int(round(x0)), 0), min(int(round(x1)), self.w)
        if y1 > y0 and x1 > x0:
            self.label[y0:y1, x0:x1] = cls
            self.color[y0:y1, x0:x1] = color

    def ellipse(self, cls, cy, cx, ry, rx, color, inner=0.0):
        """Filled ellipse, or a ring when ``inner`` (0..1, relative radius) is positive."""
        y0, y1 = max(int(cy - ry - 1), 0), min(int(cy + ry + 2), self.h)
        x0, x1 = max(int(cx - rx - 1), 0), min(int(cx + rx + 2), self.w)
        if y1 <= y0 or x1 <= x0:
            return
        d = ((self.yy[y0:y1, x0:x1] - cy) / max(ry, 0.5)) ** 2 + ((self.xx[y0:y1, x0:x1] - cx) / max(rx, 0.5)) ** 2
        mask = (d <= 1.0) & (d >= inner**2)
        self.label[y0:y1, x0:x1][mask] = cls
        self.color[y0:y1, x0:x1][mask] = color

    def line(self, cls, y0, x0, y1, x1, color):
        """A 1-px line (sampled densely enough to leave no gaps)."""
        n = int(max(abs(y1 - y0), abs(x1 - x0)) * 2) + 2
        ys = np.rint(np.linspace(y0, y1, n)).astype(int)
        xs = np.rint(np.linspace(x0, x1, n)).astype(int)
        keep = (ys >= 0) & (ys < self.h) & (xs >= 0) & (xs < self.w)
        self.label[ys[keep], xs[keep]] = cls
        self.color[ys[keep], xs[keep]] = color

    def region(self, cls, mask, color):
        self.label[mask] = cls
        self.color[mask] = color


def _jitter(rng, base, amount):
    return np.clip(np.asarray(base, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def _vehicle_colour(rng):
    return _jitter(rng, _VEHICLE_COLOURS[rng.integers(len(_VEHICLE_COLOURS))], 18)


def _draw_ground(cv: _Canvas, horizon: int):
    """Sky gradient, sidewalk below the horizon, the road trapezoid and optional terrain verges."""
    rng, h, w = cv.rng, cv.h, cv.w
    sky_top, sky_bottom = _jitter(rng, (95, 140, 205), 20), _jitter(rng, (175, 200, 230), 15)
    t = (cv.yy[:, :1] / max(horizon, 1)).clip(0, 1)[..., None]
    cv.color[:] = sky_top * (1 - t) + sky_bottom * t
    ground = cv.yy >= horizon
    cv.region(SIDEWALK, ground, _jitter(rng, (165, 150, 150), 15))
    # Road: a trapezoid converging towards a vanishing point on the horizon.
    vx = rng.uniform(0.4, 0.6) * w
    left, right = rng.uniform(-0.25, 0.12) * w, rng.uniform(0.88, 1.25) * w
    depth = ((cv.yy - horizon) / max(h - horizon, 1)).clip(0, 1)
    top_half = rng.uniform(0.04, 0.1) * w
    x_lo = vx - top_half + depth * (left - (vx - top_half))
    x_hi = vx + top_half + depth * (right - (vx + top_half))
    road = ground & (cv.xx >= x_lo) & (cv.xx <= x_hi) & (cv.yy >= horizon + 1)
    cv.region(ROAD, road, _jitter(rng, (92, 88, 100), 12))
    # Terrain verges between sidewalk and the building line, on one or both sides.
    if rng.random() < 0.4:
        band = rng.uniform(0.06, 0.2) * h
        near = ground & (cv.yy < horizon + band) & ~road
        side = cv.xx < vx if rng.random() < 0.5 else cv.xx > vx
        cv.region(TERRAIN, near & side, _jitter(rng, (110, 140, 62), 14))
    return vx, road


def _draw_buildings(cv: _Canvas, horizon: int):
    """A skyline of blocks standing on the horizon; returns the image's building colour."""
    rng, w = cv.rng, cv.w
    base = _BUILDING_COLOURS[rng.integers(len(_BUILDING_COLOURS))]
    x = -rng.uniform(0, 0.1) * w
    while x < w:
        width = rng.uniform(0.12, 0.35) * w
        if rng.random() < 0.9:
            top = rng.uniform(0.02, 0.6) * horizon
            cv.rect(BUILDING, top, horizon + 1, x, x + width, _jitter(rng, base, 14))
        x += width
    return base


def _draw_wall_and_fence(cv: _Canvas, horizon: int, building_colour):
    rng, w, h = cv.rng, cv.w, cv.h
    if rng.random() < 0.32:  # same colour family as the buildings: only the texture differs
        x0 = rng.uniform(-0.1, 0.8) * w
        height = rng.uniform(0.1, 0.2) * h
        cv.rect(WALL, horizon - height, horizon + 0.05 * h, x0, x0 + rng.uniform(0.2, 0.4) * w,
                _jitter(rng, building_colour, 8))
    if rng.random() < 0.32:
        x0 = rng.uniform(-0.1, 0.8) * w
        height = rng.uniform(0.07, 0.14) * h
        cv.rect(FENCE, horizon - height + 0.03 * h, horizon + 0.06 * h, x0, x0 + rng.uniform(0.2, 0.45) * w,
                _jitter(rng, (150, 125, 100), 18))


def _draw_vegetation(cv: _Canvas, horizon: int):
    rng, w, h = cv.rng, cv.w, cv.h
    green = (70, 118, 45)
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3], p=[0.12, 0.2, 0.2, 0.2, 0.14, 0.14])):
        cx, r = rng.uniform(0, 1) * w, rng.uniform(0.12, 0.22) * h
        cy = horizon - rng.uniform(0.15, 0.35) * h
        cv.rect(VEGETATION, cy, horizon + 0.04 * h, cx - 0.1 * r, cx + 0.1 * r + 1, _jitter(rng, (80, 65, 45), 10))
        cv.ellipse(VEGETATION, cy, cx, r, r * rng.uniform(1.0, 1.6), _jitter(rng, green, 14))
    if rng.random() < 0.25:  # a hedge along the sidewalk
        x0 = rng.uniform(0, 0.7) * w
        cv.rect(VEGETATION, horizon - 0.06 * h, horizon + 0.05 * h, x0, x0 + rng.uniform(0.15, 0.3) * w,
                _jitter(rng, green, 14))


def _perspective(cv: _Canvas, horizon: int, near: tuple[float, float]):
    """A ground position (bottom y) and its scale in (0, 1]: 1 at the image bottom."""
    scale = cv.rng.uniform(*near)
    bottom = horizon + scale * (cv.h * 0.9 - horizon)
    return bottom, scale


def _draw_car(cv: _Canvas, horizon: int, road_x: tuple[float, float]):
    rng, w = cv.rng, cv.w
    bottom, s = _perspective(cv, horizon, (0.15, 1.0))
    width = s * rng.uniform(0.2, 0.3) * w
    height = width * rng.uniform(0.42, 0.55)
    cx = rng.uniform(*road_x)
    colour = _vehicle_colour(rng)
    cv.rect(CAR, bottom - 0.6 * height, bottom, cx - width / 2, cx + width / 2, colour)
    cv.rect(CAR, bottom - height, bottom - 0.55 * height, cx - 0.35 * width, cx + 0.35 * width, colour)
    cv.rect(CAR, bottom - 0.92 * height, bottom - 0.6 * height, cx - 0.3 * width, cx + 0.3 * width, _WINDOW)
    for wx in (cx - 0.3 * width, cx + 0.3 * width):
        cv.ellipse(CAR, bottom - 0.05 * height, wx, 0.14 * height, 0.1 * width, _TYRE)


def _draw_truck(cv: _Canvas, horizon: int, w: int):
    rng = cv.rng
    bottom, s = _perspective(cv, horizon, (0.75, 1.0))
    width, height = s * rng.uniform(0.42, 0.52) * w, s * rng.uniform(0.56, 0.68) * cv.h
    x0 = rng.uniform(-0.05, 0.65) * w
    cab_left = rng.random() < 0.5
    cab_w = 0.28 * width
    box_x0 = x0 + cab_w if cab_left else x0
    cab_x0 = x0 if cab_left else x0 + width - cab_w
    cv.rect(TRUCK, bottom - height, bottom - 0.08 * height, box_x0, box_x0 + width - cab_w, _vehicle_colour(rng))
    cab = _vehicle_colour(rng)
    cv.rect(TRUCK, bottom - 0.62 * height, bottom - 0.08 * height, cab_x0, cab_x0 + cab_w, cab)
    cv.rect(TRUCK, bottom - 0.55 * height, bottom - 0.38 * height, cab_x0 + 0.15 * cab_w, cab_x0 + 0.85 * cab_w,
            _WINDOW)
    for wx in (x0 + 0.15 * width, x0 + 0.5 * width, x0 + 0.85 * width):
        cv.ellipse(TRUCK, bottom - 0.06 * height, wx, 0.08 * height, 0.06 * width, _TYRE)


def _draw_bus(cv: _Canvas, horizon: int, w: int):
    rng = cv.rng
    bottom, s = _perspective(cv, horizon, (0.6, 1.0))
    width, height = s * rng.uniform(0.58, 0.72) * w, s * rng.uniform(0.4, 0.5) * cv.h
    x0 = rng.uniform(-0.1, 0.55) * w
    cv.rect(BUS, bottom - height, bottom - 0.06 * height, x0, x0 + width, _vehicle_colour(rng))
    n = int(rng.integers(4, 7))
    for k in range(n):  # a row of side windows
        wx = x0 + (k + 0.15) * width / n
        cv.rect(BUS, bottom - 0.85 * height, bottom - 0.55 * height, wx, wx + 0.7 * width / n, _WINDOW)
    for wx in (x0 + 0.18 * width, x0 + 0.82 * width):
        cv.ellipse(BUS, bottom - 0.06 * height, wx, 0.1 * height, 0.05 * width, _TYRE)


def _draw_train(cv: _Canvas, horizon: int, w: int):
    """A tram: very long, low windows band and a pantograph line, standing at mid distance."""
    rng = cv.rng
    bottom, s = _perspective(cv, horizon, (0.45, 0.75))
    width, height = rng.uniform(0.7, 0.95) * w, s * rng.uniform(0.45, 0.56) * cv.h
    x0 = rng.uniform(-0.2, 0.25) * w
    body = _vehicle_colour(rng)
    cv.rect(TRAIN, bottom - height, bottom, x0, x0 + width, body)
    cv.rect(TRAIN, bottom - 0.8 * height, bottom - 0.5 * height, x0 + 0.03 * width, x0 + 0.97 * width, _WINDOW)
    stripe = _vehicle_colour(rng)
    cv.rect(TRAIN, bottom - 0.3 * height, bottom - 0.18 * height, x0, x0 + width, stripe)
    cv.rect(TRAIN, bottom - 1.25 * height, bottom - height, x0 + 0.45 * width, x0 + 0.47 * width, (60, 60, 60))


def _draw_figure(cv: _Canvas, cls: int, feet_y: float, cx: float, height: float):
    """A person-shaped figure: legs, torso, head. Person and rider use the same distributions."""
    rng = cv.rng
    width = max(height * rng.uniform(0.22, 0.3), 1.5)
    clothes = rng.uniform(20, 230, 3).astype(np.float32)
    trousers = rng.uniform(20, 160, 3).astype(np.float32)
    cv.rect(cls, feet_y - 0.5 * height, feet_y, cx - 0.35 * width, cx + 0.35 * width, trousers)
    cv.rect(cls, feet_y - 0.82 * height, feet_y - 0.45 * height, cx - width / 2, cx + width / 2, clothes)
    r = max(0.1 * height, 0.8)
    cv.ellipse(cls, feet_y - 0.85 * height - r * 0.6, cx, r, r, _jitter(rng, _SKIN, 25))


def _draw_two_wheeler(cv: _Canvas, cls: int, bottom: float, cx: float, length: float):
    """A bicycle (thin rings and a frame) or a motorcycle (thick wheels and a solid body)."""
    rng = cv.rng
    r = 0.22 * length
    if cls == BICYCLE:
        frame = _vehicle_colour(rng)
        for wx in (cx - length / 2 + r, cx + length / 2 - r):
            cv.ellipse(BICYCLE, bottom - r, wx, r, r, _TYRE, inner=0.55)
        cv.line(BICYCLE, bottom - r, cx - length / 2 + r, bottom - 2.1 * r, cx, frame)
        cv.line(BICYCLE, bottom - r, cx + length / 2 - r, bottom - 2.1 * r, cx, frame)
        cv.line(BICYCLE, bottom - r, cx - length / 2 + r, bottom - r, cx + 0.1 * length, frame)
    else:
        body = _vehicle_colour(rng)
        for wx in (cx - length / 2 + r, cx + length / 2 - r):
            cv.ellipse(MOTORCYCLE, bottom - r, wx, r, r, _TYRE)
        cv.rect(MOTORCYCLE, bottom - 2.3 * r, bottom - 0.9 * r, cx - 0.3 * length, cx + 0.32 * length, body)


def _draw_road_users(cv: _Canvas, horizon: int, road, vx: float):
    """Cars, at most one large vehicle (truck, bus or train), motorcycles and ridden bicycles."""
    rng, w = cv.rng, cv.w
    road_x = (0.15 * w, 0.85 * w)
    big = rng.random()
    n_cars = int(rng.choice([0, 1, 2, 3, 4], p=[0.08, 0.25, 0.3, 0.22, 0.15]))
    cars_behind = int(rng.integers(0, n_cars + 1))
    for _ in range(cars_behind):
        _draw_car(cv, horizon, road_x)
    if big < 0.10:
        _draw_truck(cv, horizon, w)
    elif big < 0.19:
        _draw_bus(cv, horizon, w)
    elif big < 0.24:
        _draw_train(cv, horizon, w)
    for _ in range(n_cars - cars_behind):
        _draw_car(cv, horizon, road_x)
    riders = []
    if rng.random() < 0.085:
        riders.append((MOTORCYCLE, (0.55, 1.0), (0.12, 0.17)))
    if rng.random() < 0.15:
        riders.append((BICYCLE, (0.4, 0.95), (0.1, 0.14)))
    for cls, near, size in riders:
        bottom, s = _perspective(cv, horizon, near)
        length = s * rng.uniform(*size) * w
        cx = rng.uniform(*road_x)
        _draw_two_wheeler(cv, cls, bottom, cx, length)
        seat = bottom - (0.45 if cls == BICYCLE else 0.5) * length
        _draw_figure(cv, RIDER, seat, cx - 0.05 * length, 0.85 * length)
        if cls == BICYCLE:  # the front wheel stays in front of the rider's legs
            r = 0.22 * length
            cv.ellipse(BICYCLE, bottom - r, cx + length / 2 - r, r, r, _TYRE, inner=0.55)


def _draw_sidewalk_life(cv: _Canvas, horizon: int, road):
    """Pedestrians, parked bicycles, poles with traffic lights and signs, on the sidewalk."""
    rng, w, h = cv.rng, cv.w, cv.h
    sidewalk_cols = np.flatnonzero(~road[min(h - 1, int(horizon + 0.25 * h))])
    if sidewalk_cols.size == 0:
        sidewalk_cols = np.array([0, w - 1])

    def sidewalk_x():
        return float(sidewalk_cols[rng.integers(sidewalk_cols.size)]) + rng.uniform(-0.5, 0.5)

    for _ in range(int(rng.choice([0, 1, 2, 3], p=[0.3, 0.35, 0.23, 0.12]))):
        if rng.random() < 0.55:
            bottom, s = _perspective(cv, horizon, (0.15, 0.7))
            _draw_two_wheeler(cv, BICYCLE, bottom, sidewalk_x(), s * rng.uniform(0.1, 0.14) * w)
        else:
            bottom, s = _perspective(cv, horizon, (0.15, 0.85))
            _draw_figure(cv, PERSON, bottom, sidewalk_x(), s * rng.uniform(0.35, 0.5) * h)
    for _ in range(int(rng.choice([0, 1, 2, 3, 4], p=[0.08, 0.3, 0.3, 0.2, 0.12]))):
        bottom, s = _perspective(cv, horizon, (0.1, 0.75))
        x = sidewalk_x()
        top = bottom - (0.35 + 0.45 * s) * h
        pole_w = 1 if s < 0.5 or w < 200 else 2
        cv.rect(POLE, top, bottom, x, x + pole_w * max(1, w // 128), _jitter(rng, (85, 85, 90), 25))
        kind = rng.random()
        if kind < 0.28:  # a traffic light box with one lit lamp
            lw, lh = max(2.0, 0.022 * w), max(4.0, 0.09 * h)
            cv.rect(LIGHT, top, top + lh, x - lw / 2, x + lw / 2 + 1, _jitter(rng, (30, 32, 30), 8))
            lamp = _LAMP_COLOURS[rng.integers(3)]
            ly = top + lh * (0.2 + 0.3 * rng.integers(3))
            cv.rect(LIGHT, ly, ly + max(1.0, lh / 4), x - lw / 2 + 0.5, x + lw / 2 + 0.5, lamp)
        elif kind < 0.6:  # a sign plate
            size = max(2.5, rng.uniform(0.025, 0.04) * w)
            colour = _jitter(rng, _SIGN_COLOURS[rng.integers(len(_SIGN_COLOURS))], 15)
            if rng.random() < 0.5:
                cv.rect(SIGN, top, top + size, x - size / 2, x + size / 2 + 1, colour)
            else:
                cv.ellipse(SIGN, top + size / 2, x + 0.5, size / 2, size / 2, colour)
    for _ in range(int(rng.choice([0, 1, 2], p=[0.55, 0.3, 0.15]))):  # more people, near
        bottom, s = _perspective(cv, horizon, (0.3, 0.9))
        _draw_figure(cv, PERSON, bottom, sidewalk_x(), s * rng.uniform(0.35, 0.5) * h)


def _draw_hood(cv: _Canvas):
    """The ego vehicle's hood: an ignore band at the bottom, bulging upwards in the middle."""
    h, w = cv.h, cv.w
    depth = 0.06 * h + 0.04 * h * (1 - ((cv.xx[0] - w / 2) / (w / 2)) ** 2)
    hood = cv.yy >= (h - depth)[None, :]
    cv.region(IGNORE_INDEX, hood, _jitter(cv.rng, (35, 35, 40), 8))


def _texture_fields(rng, h, w, yy, xx):
    """Per-image texture fields, indexed by the per-class texture kind. Shape (6, H, W)."""
    fine = rng.standard_normal((h, w), dtype=np.float32)
    coarse_small = rng.standard_normal((h // 8 + 2, w // 8 + 2)).astype(np.float32)
    coarse = zoom(coarse_small, 8, order=1)[:h, :w]  # smooth blotches at about 8 px
    period_x, period_y = int(rng.integers(4, 7)), int(rng.integers(4, 6))
    windows = np.where(((xx % period_x) < period_x // 2) & ((yy % period_y) < 2), -1.0, 0.3)
    bricks = np.where(yy % 3 == 0, -1.0, 0.3)
    bars = np.where(xx % 3 == 0, -1.0, 0.4)
    flat = np.zeros((h, w), np.float32)
    return np.stack([fine, coarse, windows, bricks, bars, flat]).astype(np.float32)


def render_scene(seed_sequence: np.random.SeedSequence, size: tuple[int, int] = DEFAULT_SIZE):
    """Draw one street scene.

    Args:
        seed_sequence: the image's own seed; the same seed gives the same bytes.
        size: ``(H, W)``.

    Returns:
        ``(image, label)``: uint8 ``(H, W, 3)`` RGB and uint8 ``(H, W)`` class ids (255 = ignore).
    """
    rng = np.random.default_rng(seed_sequence)
    h, w = size
    cv = _Canvas(h, w, rng)
    horizon = int(rng.uniform(0.4, 0.5) * h)
    vx, road = _draw_ground(cv, horizon)
    building_colour = _draw_buildings(cv, horizon)
    _draw_vegetation(cv, horizon)
    _draw_wall_and_fence(cv, horizon, building_colour)
    _draw_sidewalk_life(cv, horizon, road)
    _draw_road_users(cv, horizon, road, vx)
    _draw_hood(cv)

    fields = _texture_fields(rng, h, w, cv.yy, cv.xx)
    texture = fields[_TEX_KIND[cv.label], cv.yy, cv.xx] * _TEX_AMP[cv.label]
    image = cv.color + texture[..., None]
    image = gaussian_filter(image, sigma=(rng.uniform(0.45, 0.8),) * 2 + (0,))  # optics blur
    gain, offset = rng.uniform(0.8, 1.15), rng.uniform(-15, 15)
    noise = rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(3, 7)  # sensor noise
    image = image * gain + offset + noise  # exposure
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), cv.label


class SyntheticStreets(torch.utils.data.Dataset):
    """Procedural Cityscapes-like street scenes, generated lazily per index and memoised.

    ``ds[i]`` gives ``(image float32 (3, H, W) normalised, target int64 (H, W))``. No geometric
    augmentation by default (the data are endless variations already); pass ``transforms``
    (a callable on ``(tv_tensors.Image, tv_tensors.Mask)``) to add some.
    """

    name = "synthetic"
    generated = True  # drawn in memory: a pass over the labels costs what drawing them does (runner.prepare)
    classes = list(CITYSCAPES_CLASSES)
    num_classes = len(CITYSCAPES_CLASSES)
    palette = CITYSCAPES_PALETTE
    ignore_index = IGNORE_INDEX

    def __init__(self, split: str = "train", num_images: int | None = None,
                 size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0, transforms=None, memoize: bool = True):
        if split not in SPLIT_CODES:
            raise UserError(f"unknown split {split!r} for synthetic; choose one of {sorted(SPLIT_CODES)}")
        size = tuple(int(v) for v in size)
        if len(size) != 2 or min(size) < 32:
            raise UserError(f"synthetic size {size} must be (H, W) with both at least 32")
        self.split, self.size, self.seed = split, size, int(seed)
        self.num_images = int(num_images if num_images is not None else DEFAULT_NUM_IMAGES.get(split, 500))
        if self.num_images < 1:
            raise UserError(f"synthetic num_images must be positive, got {self.num_images}")
        self.transforms = transforms
        self._memo = {} if memoize else None

    def __len__(self) -> int:
        return self.num_images

    def _scene(self, index: int):
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        if self._memo is not None and index in self._memo:
            return self._memo[index]
        scene = render_scene(self.seed_sequence(index), self.size)
        for array in scene:  # memoised arrays are shared by every caller: keep them immutable
            array.flags.writeable = False
        if self._memo is not None:
            self._memo[index] = scene
        return scene

    def seed_sequence(self, index: int) -> np.random.SeedSequence:
        """Image ``index``'s own seed: ``SeedSequence([seed, split, index])``."""
        return np.random.SeedSequence([self.seed, SPLIT_CODES[self.split], index])

    def draw_all(self, cache_dir=None, workers: int = 1) -> None:
        """Every image into the memo: read from ``cache_dir`` where a process drew this split with
        the same fingerprint, else drawn here (in ``workers`` forked processes when there are enough
        images to pay for them) and written there for the next process."""
        if self._memo is None or len(self._memo) == self.num_images:
            return
        key = hashlib.sha256(json.dumps(self.fingerprint(), sort_keys=True).encode()).hexdigest()
        path = None if cache_dir is None else Path(cache_dir) / f"scenes-{self.split}-{key[:16]}.npz"
        drawn = _read_scenes(path, key, self.num_images, self.size) if path else None
        if drawn is None:
            drawn = _draw_scenes(self, workers if self.num_images >= _PARALLEL_DRAW_MIN else 1)
            if path is not None:
                _write_scenes(path, key, *drawn)
        images, labels = drawn
        images.flags.writeable = labels.flags.writeable = False  # shared by every caller, as the memo's
        self._memo.update((i, (images[i], labels[i])) for i in range(self.num_images))

    def image(self, index: int) -> np.ndarray:
        """Raw RGB, uint8 (H, W, 3)."""
        return self._scene(index)[0]

    def label(self, index: int) -> np.ndarray:
        """Raw class ids, uint8 (H, W), 255 = ignore."""
        return self._scene(index)[1]

    def fingerprint(self) -> dict:
        """What determines the data: the key of the class-index cache."""
        return {"generator_version": GENERATOR_VERSION, "split": self.split, "num_images": self.num_images,
                "size": list(self.size), "seed": self.seed}

    def __getitem__(self, index: int):
        image, label = self._scene(index)
        if self.transforms is not None:
            return self.transforms(image, label)
        return normalize_image(torch.tensor(image).permute(2, 0, 1)), torch.tensor(label, dtype=torch.int64)


# ----------------------------------------------------------------------------- drawing once per experiment
_PARALLEL_DRAW_MIN = 256  # fewer images are drawn faster than a process pool starts


def _draw_range(dataset: SyntheticStreets, indices: range) -> tuple[np.ndarray, np.ndarray]:
    scenes = [render_scene(dataset.seed_sequence(i), dataset.size) for i in indices]
    return np.stack([s[0] for s in scenes]), np.stack([s[1] for s in scenes])


def _draw_scenes(dataset: SyntheticStreets, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, H, W, 3)`` and labels ``(N, H, W)``, uint8, drawn in ``workers`` forked processes
    (the same bytes as one by one: each image has its own seed)."""
    from functools import partial

    from fairseg_bench.cpu_process import fork_map

    bounds = np.linspace(0, dataset.num_images, max(workers, 1) * 4 + 1).astype(int)
    ranges = [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    parts = fork_map(partial(_draw_range, dataset), ranges, workers)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _read_scenes(path: Path, key: str, n: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached drawing, or None when the file is missing, unreadable or of other settings."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            images, labels = data["images"], data["labels"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # missing, truncated, corrupt
        return None
    if (images.shape != (n, *size, 3) or labels.shape != (n, *size)
            or images.dtype != np.uint8 or labels.dtype != np.uint8):
        return None
    return images, labels


def _write_scenes(path: Path, key: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Uncompressed (reading it back must cost far less than drawing); temp file + rename, so a
    concurrent reader never sees half a file."""
    from fairseg_bench.atomic import write_atomic

    buffer = io.BytesIO()
    np.savez(buffer, images=images, labels=labels, key=np.array(key))
    write_atomic(path, buffer.getvalue(), durable=False)
