"""``mf bag recover BAG --out OUT``: rebuild a bag that was never closed (kill -9, power loss, full disk)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    recover = actions.add_parser("recover", help="copy every intact message of a cut-off MCAP bag into a new bag",
                                 description=__doc__)
    recover.add_argument("bag", help="the damaged bag directory or .mcap file (left untouched)")
    recover.add_argument("--out", required=True, help="the new bag directory")
    recover.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")


def run(args: argparse.Namespace) -> int:
    from mf_ros.bag_recovery import recover

    result = recover(args.bag, args.out, overwrite=args.overwrite)
    print(result.summary())
    return 1 if result.corrupted_chunks else 0
