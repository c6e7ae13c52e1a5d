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


# `grove api` option -> Settings field; each is also the environment variable GROVE_<FIELD>.
API_OPTIONS = {
    "host": "listen address (default 0.0.0.0)",
    "port": "listen port (default 10000)",
    "inventory": "Ansible inventory of the workers: clusters are groups, workers are hosts",
    "db": "SQLite file (default DATA_DIR/grove.db)",
    "mongo_url": "use MongoDB at this URL instead of SQLite",
    "data_dir": "signing key, job directories and locks (default /var/lib/grove/api)",
    "workers": "uvicorn worker processes (default 1)",
}


def _api(args: argparse.Namespace) -> int:
    import os  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415 - keep `grove --help` fast

    for name in API_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            os.environ[f"GROVE_{name.upper()}"] = str(value)
    from grove_api.settings import Settings  # noqa: PLC0415

    settings = Settings()  # fails early, with the field's name, on a bad setting
    logging.getLogger("grove_api").setLevel(logging.INFO)
    uvicorn.run(
        "grove_api.main:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="info" if args.verbose else "warning",
        proxy_headers=False,
    )
    return 0


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

    api = commands.add_parser("api", help="the root orchestrator: Oakestra's REST API on port 10000")
    for name, text in API_OPTIONS.items():
        kind = int if name in ("port", "workers") else str
        api.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=kind,
            default=None,
            help=f"{text} [env GROVE_{name.upper()}]",
        )
    api.set_defaults(func=_api)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        return args.func(args)
    except (TestbedError, ValueError) as exc:
        print(f"grove: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
