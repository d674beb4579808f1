"""Procedural street: road with lane line, sidewalks, buildings, parked and oncoming cars, poles, trees."""

from __future__ import annotations

import numpy as np

from mf_training.sim.scene import Layout, Material, Pattern, SceneBuilder, random_material
from mf_training.sim.shapes import box, cylinder, sphere
from mf_training.sim.trajectory import StreetDrive

ROAD_HALF_WIDTH = 5.0  # m; the carrier drives in the right lane (y < 0)
SIDEWALK_WIDTH = 3.0  # m
CAR_COLOURS = ((0.7, 0.1, 0.1), (0.1, 0.2, 0.6), (0.8, 0.8, 0.8), (0.15, 0.15, 0.15), (0.9, 0.7, 0.1))
FACADE_COLOURS = ((0.75, 0.65, 0.5), (0.55, 0.35, 0.3), (0.6, 0.6, 0.65), (0.85, 0.8, 0.7), (0.4, 0.45, 0.5))
TYRE = Material((0.06, 0.06, 0.06), (0.15, 0.15, 0.15), Pattern.STRIPES, 0.1)
GLASS = Material((0.12, 0.18, 0.25), (0.3, 0.38, 0.45), Pattern.STRIPES, 0.4)


def _add_car(builder: SceneBuilder, rng: np.random.Generator, x: float, y: float, yaw: float) -> None:
    """Body, cabin and four wheels of a car centred at (x, y) on the road, heading ``yaw``."""
    rotation = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    length, width = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9)

    def at(dx: float, dy: float, z: float) -> tuple[float, float, float]:
        ox, oy = rotation @ (dx, dy)
        return (x + ox, y + oy, z)

    paint = random_material(rng, CAR_COLOURS[rng.integers(len(CAR_COLOURS))], (Pattern.TILES,), (0.5, 1.0))
    builder.add(box((length, width, 0.75), at(0, 0, 0.675), yaw), paint)
    builder.add(box((length * 0.5, width * 0.9, 0.55), at(-0.1 * length, 0, 1.325), yaw), GLASS)
    for sx in (-1, 1):
        for sy in (-1, 1):
            builder.add(cylinder(0.33, 0.22, at(sx * 0.32 * length, sy * 0.45 * width, 0.33), yaw, lying=True), TYRE)


def _add_buildings(builder: SceneBuilder, rng: np.random.Generator, side: int, x_end: float) -> None:
    """A row of buildings behind the sidewalk on one side (``side`` = +1 left, -1 right)."""
    x = -40.0
    front = ROAD_HALF_WIDTH + SIDEWALK_WIDTH
    while x < x_end:
        width, depth, height = rng.uniform(8, 25), rng.uniform(8, 15), rng.uniform(5, 30)
        setback = rng.uniform(0.5, 4.0)
        centre_y = side * (front + setback + depth / 2)
        facade = random_material(rng, FACADE_COLOURS[rng.integers(len(FACADE_COLOURS))],
                                 (Pattern.BANDS, Pattern.CHECKER, Pattern.TILES), (1.0, 3.0))
        builder.add(box((width, depth, height), (x + width / 2, centre_y, height / 2)), facade)
        x += width + rng.uniform(0.0, 8.0)


def _add_street_furniture(builder: SceneBuilder, rng: np.random.Generator, side: int, x_end: float) -> None:
    """Poles, trees, bins and crates along the sidewalk on one side."""
    x = -30.0
    while x < x_end:
        y = side * (ROAD_HALF_WIDTH + rng.uniform(0.5, SIDEWALK_WIDTH - 0.5))
        kind = rng.integers(4)
        if kind == 0:  # lamp pole with a lamp head
            height = rng.uniform(4.0, 7.0)
            builder.add(cylinder(rng.uniform(0.07, 0.12), height, (x, y, height / 2)),
                        random_material(rng, (0.35, 0.35, 0.38), (Pattern.STRIPES,), (0.2, 0.5)))
            builder.add(sphere(0.25, (x, y, height + 0.1)), Material((0.95, 0.95, 0.85), (0.8, 0.8, 0.7),
                                                                    Pattern.TILES, 0.2))
        elif kind == 1:  # tree: trunk and crown
            trunk = rng.uniform(2.0, 3.5)
            builder.add(cylinder(rng.uniform(0.12, 0.2), trunk, (x, y, trunk / 2)),
                        random_material(rng, (0.35, 0.22, 0.12), (Pattern.STRIPES,), (0.05, 0.15)))
            crown = rng.uniform(1.0, 2.0)
            builder.add(sphere(crown, (x, y, trunk + crown * 0.8)),
                        random_material(rng, (0.15, 0.45, 0.12), (Pattern.TILES,), (0.15, 0.4)))
        elif kind == 2:  # bin
            builder.add(cylinder(0.3, 1.0, (x, y, 0.65)),
                        random_material(rng, (0.2, 0.4, 0.2), (Pattern.BANDS,), (0.1, 0.3)))
        else:  # stack of crates
            size = rng.uniform(0.5, 1.2)
            builder.add(box((size, size, size), (x, y, 0.15 + size / 2), rng.uniform(0, np.pi)),
                        random_material(rng, (0.6, 0.45, 0.25), (Pattern.STRIPES, Pattern.CHECKER), (0.1, 0.3)))
        x += rng.uniform(6.0, 20.0)


def _add_cars(builder: SceneBuilder, rng: np.random.Generator, x_end: float) -> None:
    """Parked cars at both road edges and stopped cars in the oncoming lane."""
    for lane_y, gap, yaw in ((-4.0, (5.5, 25.0), 0.0), (4.0, (5.5, 25.0), np.pi), (2.2, (15.0, 45.0), np.pi)):
        x = rng.uniform(0.0, 10.0)
        while x < x_end:
            _add_car(builder, rng, x, lane_y + rng.uniform(-0.15, 0.15), yaw + rng.uniform(-0.05, 0.05))
            x += rng.uniform(*gap)


def street_layout(rng: np.random.Generator, distance: float) -> Layout:
    """A straight street long enough to drive ``distance`` metres from x = 0 and still see ahead."""
    x_end = distance + 80.0
    builder = SceneBuilder()
    builder.add(box((x_end + 440.0, 240.0, 0.1), (x_end / 2 + 150.0, 0.0, -0.07)),
                random_material(rng, (0.3, 0.45, 0.2), (Pattern.TILES,), (1.0, 2.0)))  # grass, top at -0.02
    builder.add(box((x_end + 140.0, 2 * ROAD_HALF_WIDTH, 0.1), (x_end / 2, 0.0, -0.05)),
                random_material(rng, (0.22, 0.22, 0.23), (Pattern.TILES,), (0.3, 0.6)))  # asphalt, top at 0
    builder.add(box((x_end + 140.0, 0.15, 0.1), (x_end / 2, 0.0, -0.045)),
                Material((0.9, 0.9, 0.85), (0.22, 0.22, 0.23), Pattern.STRIPES, 3.0))  # dashed centre line
    for side in (-1, 1):
        builder.add(box((x_end + 140.0, SIDEWALK_WIDTH, 0.25),
                        (x_end / 2, side * (ROAD_HALF_WIDTH + SIDEWALK_WIDTH / 2), 0.025)),
                    random_material(rng, (0.6, 0.6, 0.58), (Pattern.CHECKER, Pattern.TILES), (0.4, 0.8)))
        _add_buildings(builder, rng, side, x_end)
        _add_street_furniture(builder, rng, side, x_end)
    _add_cars(builder, rng, x_end)
    path = StreetDrive(speed=float(rng.uniform(6.0, 10.0)), period=float(rng.uniform(8.0, 14.0)))
    sun = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 0.8])
    return Layout(builder.build(), path, tuple((sun / np.linalg.norm(sun)).tolist()), 0.35)
