"""The `grove` command line."""

from __future__ import annotations

import argparse
import logging
import sys

from grove.testbed.commands import TestbedError


def _testbed(args: argparse.Namespace) -> int:
    from grove.testbed import bed  # noqa: PLC0415 - keep `grove --help` fast

    if args.action == "up":
        return bed.main_up(args.clusters, args.workers, with_images=not args.no_images)
    if args.action == "down":
        return bed.main_down()
    return bed.main_status()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grove", description="Agentless edge orchestrator")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    commands = parser.add_subparsers(dest="command", required=True)

    testbed = commands.add_parser("testbed", help="local edge test bed: worker hosts as network namespaces")
    actions = testbed.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="create the test bed and print its inventory path last")
    up.add_argument("--clusters", type=int, default=1, help="number of clusters (default 1)")
    up.add_argument("--workers", type=int, default=2, help="worker hosts per cluster (default 2)")
    up.add_argument("--no-images", action="store_true", help="do not build and publish the test images")
    actions.add_parser("status", help="show each host and whether it answers")
    actions.add_parser("down", help="remove everything the test bed made")
    testbed.set_defaults(func=_testbed)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    try:
        return args.func(args)
    except (TestbedError, ValueError) as exc:
        print(f"grove: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
