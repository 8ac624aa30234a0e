"""`stackfleet lab ...`: the argparse layer over ops.py."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from stackfleet.cli.arguments import count, lease_ttl
from stackfleet.confirm import deletion_confirmed
from stackfleet.lab.net import IpError
from stackfleet.lab.plan import DEFAULT_TTL, Counts, PlanError
from stackfleet.lab.report import format_status, format_units
from stackfleet.lab.state import ROOT_ENV, default_root

# ops and client (the whole lab, the runtime, the certificates) are imported by the commands
# that run: `stackfleet --help` builds this parser too, and needs neither.

Handler = Callable[[argparse.Namespace], int]


def say(line: str) -> None:
    print(line, flush=True)


def guarded(body: Handler) -> Handler:
    """Turns the lab's expected failures into one line on stderr and exit code 1."""

    def handler(args: argparse.Namespace) -> int:
        from stackfleet.lab import client, ops

        try:
            return body(args)
        except (ops.LabError, PlanError, IpError, client.SupervisorError,
                client.SupervisorUnavailable) as exc:
            print(f"stackfleet lab: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130

    return handler


def root_of(args: argparse.Namespace) -> Path:
    return Path(args.root) if args.root else default_root()


def cmd_up(args: argparse.Namespace) -> int:
    from stackfleet.lab import ops

    shape_given = [args.controllers, args.network, args.compute, args.nova_docker]
    if args.machine:
        if any(v is not None for v in shape_given) or args.ttl or args.only:
            raise ops.LabError("`lab up MACHINE` takes no shape options; they apply to a new lab")
        ops.up_machine(root_of(args), args.machine, say)
        return 0
    defaults = Counts()
    counts = None
    if any(v is not None for v in shape_given):
        counts = Counts(
            controllers=defaults.controllers if args.controllers is None else args.controllers,
            network=defaults.network if args.network is None else args.network,
            compute=defaults.compute if args.compute is None else args.compute,
            nova_docker=defaults.nova_docker if args.nova_docker is None else args.nova_docker,
        )
    kinds = tuple(k.strip() for k in args.only.split(",")) if args.only else None
    ops.up(root_of(args), counts, args.ttl, kinds, say)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from stackfleet.lab import ops

    print(format_status(ops.status(root_of(args))))
    units = ops.unit_usage(root_of(args))
    if units:
        print()
        print(format_units(units))
    return 0


def cmd_halt(args: argparse.Namespace) -> int:
    from stackfleet.lab import ops

    ops.halt(root_of(args), args.machine, say)
    return 0


def cmd_partition(args: argparse.Namespace) -> int:
    from stackfleet.lab import ops

    ops.partition(root_of(args), args.machine, say)
    return 0


def cmd_heal(args: argparse.Namespace) -> int:
    from stackfleet.lab import ops

    ops.heal(root_of(args), args.machine, say)
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from stackfleet.lab import ops

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return ops.exec_in(root_of(args), args.machine, command)


def purge_confirmed(shared: Path) -> bool:
    """Asks on the terminal before the shared data goes; without one, refuses (--yes says it)."""
    print(f"lab destroy --purge will DELETE the shared data in {shared}: the whole cloud "
          "(databases, images, instances).", file=sys.stderr)
    return deletion_confirmed("stackfleet lab: --purge", "Nothing was destroyed.")


def cmd_destroy(args: argparse.Namespace) -> int:
    from stackfleet.lab import ops

    ops.require_root_user()  # before asking: a refusal after the answer would waste it
    root = root_of(args)
    shared = ops.shared_dir_of(root)
    if args.purge and not args.yes and shared.exists() and not purge_confirmed(shared):
        return 1
    ops.destroy(root, say, purge=args.purge)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds `lab` and its sub-commands; each sets func=handler(args) -> exit code."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root", help=f"lab root directory (default: ${ROOT_ENV} or {default_root()})"
    )
    lab = subparsers.add_parser(
        "lab", help="the built-in multi-machine cluster on this Linux box (needs root)",
        description="Machines are network namespaces on bridges; etcd runs on the controllers.",
    )
    sub = lab.add_subparsers(dest="lab_command", metavar="COMMAND", required=True)

    up = sub.add_parser("up", parents=[common], help="create the lab, or power a machine back on")
    up.add_argument("machine", nargs="?", help="a halted machine to bring back")
    up.add_argument("--controllers", type=count, metavar="N", help="default 3")
    up.add_argument("--network", type=count, metavar="N", help="default 2")
    up.add_argument("--compute", type=count, metavar="N", help="default 2")
    up.add_argument("--nova-docker", type=count, metavar="N", help="default 2")
    up.add_argument("--ttl", type=lease_ttl, metavar="S",
                    help=f"machine lease TTL (default {DEFAULT_TTL}, at least 2)")
    # Internal: run only some process kinds (e.g. etcd alone for testing the lab itself).
    up.add_argument("--only", help=argparse.SUPPRESS)
    up.set_defaults(func=guarded(cmd_up))

    st = sub.add_parser("status", parents=[common], help="machines, states, processes, memory; "
                        "memory and CPU per unit")
    st.set_defaults(func=guarded(cmd_status))

    for name, func, text in (
        ("halt", cmd_halt, "pull the power: kill every process of the machine, links down"),
        ("partition", cmd_partition, "links down, processes keep running"),
        ("heal", cmd_heal, "links up again after a partition"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("machine")
        p.set_defaults(func=guarded(func))

    ex = sub.add_parser("exec", parents=[common], help="run a command inside a machine",
                        usage="%(prog)s [--root ROOT] MACHINE -- COMMAND...")
    ex.add_argument("machine")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(func=guarded(cmd_exec))

    de = sub.add_parser(
        "destroy", parents=[common],
        help="stop everything, delete namespaces, links and the lab root, but keep the shared data",
        description="Stops every lab process and deletes the namespaces, links and the lab root. "
                    "It keeps the shared data (ROOT/shared: the cloud's databases, images and "
                    "instances), which a new `lab up` at the same root uses again. --purge deletes "
                    "it too, after asking; without a terminal it needs --yes (else exit code 1).",
    )
    de.add_argument("--purge", action="store_true",
                    help="also delete the shared data (asks first)")
    de.add_argument("--yes", action="store_true", help="with --purge: do not ask")
    de.set_defaults(func=guarded(cmd_destroy))
