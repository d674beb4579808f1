"""``mf models``: the model sizes in the registry with their parameter counts."""

from __future__ import annotations

import argparse
import json

from mf_core.model import MODEL_SIZES, count_parameters

COLUMNS = ("name", "width", "heads", "blocks (joint/single/dec)", "patch", "params")


def registry_rows() -> list[dict]:
    """One dict per registry entry: name, width, heads, block counts, patch size, parameter count."""
    return [
        {
            "name": name,
            "width": config.width,
            "heads": config.heads,
            "blocks": [config.n_joint, config.n_single, config.n_dec],
            "patch": config.patch_size,
            "params": count_parameters(config),
        }
        for name, config in MODEL_SIZES.items()
    ]


def _format(row: dict) -> tuple[str, ...]:
    params = row["params"]
    human = f"{params / 1e9:.2f}B" if params >= 1e9 else f"{params / 1e6:.1f}M"
    return (row["name"], str(row["width"]), str(row["heads"]), "/".join(map(str, row["blocks"])),
            str(row["patch"]), human)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")


def run(args: argparse.Namespace) -> int:
    rows = registry_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [COLUMNS, *(_format(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0
