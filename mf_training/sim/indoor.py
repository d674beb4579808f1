"""Procedural room: floor, walls, ceiling, pictures, and furniture kept clear of the walking loop."""

from __future__ import annotations

import numpy as np

from mf_training.sim.scene import Layout, Pattern, SceneBuilder, random_material
from mf_training.sim.shapes import box, cylinder, sphere
from mf_training.sim.trajectory import RoomWalk

WOOD = (0.55, 0.38, 0.22)
FABRIC_COLOURS = ((0.6, 0.2, 0.2), (0.2, 0.35, 0.6), (0.3, 0.5, 0.3), (0.7, 0.6, 0.3), (0.5, 0.5, 0.55))
PATH_CLEARANCE = 0.6  # m between the walking loop and any furniture footprint


def _add_table(builder: SceneBuilder, rng: np.random.Generator, x: float, y: float, size: float) -> None:
    """Table top on four legs, ``size`` metres across."""
    height = rng.uniform(0.7, 0.8)
    wood = random_material(rng, WOOD, (Pattern.STRIPES, Pattern.TILES), (0.05, 0.2))
    builder.add(box((size, size * 0.7, 0.05), (x, y, height - 0.025)), wood)
    for sx in (-1, 1):
        for sy in (-1, 1):
            builder.add(box((0.06, 0.06, height - 0.05), (x + sx * size * 0.43, y + sy * size * 0.3,
                                                           (height - 0.05) / 2)), wood)


def _add_item(builder: SceneBuilder, rng: np.random.Generator, x: float, y: float, size: float,
              ceiling: float) -> None:
    """One random piece of furniture with footprint about ``size`` metres at (x, y)."""
    kind = rng.integers(5)
    if kind == 0:
        _add_table(builder, rng, x, y, size)
    elif kind == 1:  # shelf / cabinet with shelf bands
        height = rng.uniform(1.2, 2.2)
        builder.add(box((size, size * 0.5, height), (x, y, height / 2), rng.uniform(0, np.pi)),
                    random_material(rng, WOOD, (Pattern.BANDS,), (0.25, 0.45)))
    elif kind == 2:  # column from floor to ceiling
        builder.add(cylinder(size * 0.3, ceiling, (x, y, ceiling / 2)),
                    random_material(rng, (0.8, 0.8, 0.78), (Pattern.BANDS, Pattern.TILES), (0.2, 0.6)))
    elif kind == 3:  # ball on the floor
        radius = size * 0.4
        builder.add(sphere(radius, (x, y, radius)),
                    random_material(rng, FABRIC_COLOURS[rng.integers(len(FABRIC_COLOURS))],
                                    (Pattern.CHECKER, Pattern.STRIPES), (0.08, 0.2)))
    else:  # armchair-like block: seat and back
        colour = random_material(rng, FABRIC_COLOURS[rng.integers(len(FABRIC_COLOURS))], (Pattern.TILES,),
                                 (0.05, 0.15))
        yaw = rng.uniform(0, np.pi)
        builder.add(box((size, size, 0.45), (x, y, 0.225), yaw), colour)
        back = np.array([np.cos(yaw), np.sin(yaw)]) * size * 0.4
        builder.add(box((size * 0.2, size, 0.5), (x - back[0], y - back[1], 0.7), yaw), colour)


def room_layout(rng: np.random.Generator) -> Layout:
    """A closed rectangular room with furniture around and inside an elliptic walking loop."""
    lx, ly, height = rng.uniform(7.0, 11.0), rng.uniform(6.0, 9.0), rng.uniform(2.6, 3.2)
    path = RoomWalk(centre=(lx / 2, ly / 2), semi_axes=(lx / 2 - 1.7, ly / 2 - 1.7),
                    speed=float(rng.uniform(0.8, 1.3)))
    builder = SceneBuilder()
    builder.add(box((lx + 0.4, ly + 0.4, 0.1), (lx / 2, ly / 2, -0.05)),
                random_material(rng, (0.55, 0.45, 0.35), (Pattern.CHECKER, Pattern.STRIPES), (0.3, 0.6)))
    builder.add(box((lx + 0.4, ly + 0.4, 0.1), (lx / 2, ly / 2, height + 0.05)),
                random_material(rng, (0.9, 0.9, 0.88), (Pattern.TILES,), (0.6, 1.2)))
    # (centre x, centre y, inward normal x, inward normal y) of each wall; walls are 10 cm thick
    walls = ((lx / 2, -0.05, 0, 1), (lx / 2, ly + 0.05, 0, -1), (-0.05, ly / 2, 1, 0), (lx + 0.05, ly / 2, -1, 0))
    for cx, cy, nx, ny in walls:
        span = lx if nx == 0 else ly
        builder.add(box((abs(ny) * (span + 0.4) + 0.1 * abs(nx), abs(nx) * (span + 0.4) + 0.1 * abs(ny), height),
                        (cx, cy, height / 2)),
                    random_material(rng, (0.8, 0.78, 0.7), (Pattern.TILES, Pattern.STRIPES, Pattern.BANDS),
                                    (0.3, 1.0)))
        for _ in range(rng.integers(1, 4)):  # pictures hung on the wall, 1 cm proud of it
            along = rng.uniform(-0.4, 0.4) * span
            width = rng.uniform(0.4, 1.2)
            centre = (cx + abs(ny) * along + nx * 0.06, cy + abs(nx) * along + ny * 0.06, rng.uniform(1.2, 1.9))
            builder.add(box((abs(ny) * width + 0.02 * abs(nx), abs(nx) * width + 0.02 * abs(ny),
                             rng.uniform(0.3, 0.9)), centre),
                        random_material(rng, FABRIC_COLOURS[rng.integers(len(FABRIC_COLOURS))],
                                        (Pattern.CHECKER, Pattern.TILES, Pattern.STRIPES), (0.05, 0.2)))
    loop = np.stack(path.track(np.linspace(0, 200, 400))[:2], axis=1)  # (400, 2) points on the loop
    placed: list[tuple[float, float, float]] = []
    for _ in range(300):
        if len(placed) >= 14:
            break
        size = rng.uniform(0.5, 1.4)
        x, y = rng.uniform(size, lx - size), rng.uniform(size, ly - size)
        footprint = size * 0.75
        if np.min(np.hypot(loop[:, 0] - x, loop[:, 1] - y)) < footprint + PATH_CLEARANCE:
            continue
        if any(np.hypot(x - px, y - py) < footprint + pr for px, py, pr in placed):
            continue
        placed.append((x, y, footprint))
        _add_item(builder, rng, x, y, size, height)
    sun = np.array([0.3, 0.2, 0.93])
    return Layout(builder.build(), path, tuple((sun / np.linalg.norm(sun)).tolist()), 0.5)
