"""The `stackfleet` command: fleetctl's verbs, plus the lab and the OpenStack roles."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

from .arguments import count, lease_ttl
from .errors import EXIT_FAILED, EXIT_UNAVAILABLE, CommandError

if TYPE_CHECKING:
    from ..registry.gateway import GatewayReader
    from ..registry.store import Registry

# A command imports only its own module when it runs: the etcd client (aetcd, gRPC) costs more
# than the rest of a short command, and `verify`, `--help` and the lab need none of it.

EPILOG = """\
examples:
  stackfleet lab up                         start the built-in 9-machine lab
  stackfleet start units/controller.service submit, schedule and start; waits until running
  stackfleet list-units                     where every unit runs, and its state
  stackfleet journal -f controller.service  follow a unit's output
  stackfleet lab halt controller-03         pull the power of a machine; watch the unit move

the cluster: --endpoint URL[,URL...] or $STACKFLEET_ENDPOINT; by default the running lab,
else http://127.0.0.1:2379. An https:// cluster needs its CA and a client certificate:
--ca-file/--cert-file/--key-file, or $STACKFLEET_CA_FILE/$STACKFLEET_CERT_FILE/$STACKFLEET_KEY_FILE;
the lab's own are found by themselves. https:// never falls back to plaintext.

exit codes: 0 ok; 1 bad input or the operation failed (nothing changed on bad input);
2 usage; 3 unit not running (status); 4 no such unit; 69 etcd unreachable.
"""

# fleetctl's names; etcdctl v3 calls them --cacert, --cert and --key.
TLS_FLAGS = (("--ca-file", "STACKFLEET_CA_FILE", "the cluster CA's certificate"),
             ("--cert-file", "STACKFLEET_CERT_FILE", "client certificate"),
             ("--key-file", "STACKFLEET_KEY_FILE", "the client certificate's key"))

Handler = Callable[[argparse.Namespace], int]
ClusterCommand = Callable[["Registry", argparse.Namespace], Awaitable[int]]
ReadCommand = Callable[["GatewayReader", argparse.Namespace], int]


def _resolve(target: str) -> Callable[..., object]:
    """'module.function' inside stackfleet.cli, imported on first use."""
    module, _, name = target.rpartition(".")
    fn: Callable[..., object] = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    return fn


def _local(target: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        return cast(Handler, _resolve(target))(args)

    return handler


def _cluster(target: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        from .context import run_with_registry

        fn = cast(ClusterCommand, _resolve(target))
        return run_with_registry(args.endpoint, lambda registry: fn(registry, args))

    return handler


def _read(target: str) -> Handler:
    """A one-shot read-only command, fn(reader, args), over etcd's JSON gateway."""
    def handler(args: argparse.Namespace) -> int:
        from .readview import run_read

        fn = cast(ReadCommand, _resolve(target))
        return run_read(args.endpoint, lambda reader: fn(reader, args))

    return handler


def command_verb(argv: list[str]) -> str | None:
    """The command word of argv: its first word that is not an option (nor the value of
    --endpoint or of a certificate flag)."""
    words = iter(argv)
    for word in words:
        if word in ("--endpoint", "--endpoints", *(flag for flag, _, _ in TLS_FLAGS)):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI; for a verb `wanted` of the core's own, without the lab's and OpenStack's commands.

    Those come from their packages, whose imports cost more than a short command itself; they
    are added for their own verbs, for --help and for a verb nobody knows (so that the usage
    error lists every command)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoint", "--endpoints", dest="endpoint", default=argparse.SUPPRESS,
                        metavar="URL[,URL...]", help="etcd endpoints of the cluster")
    for flag, env, text in TLS_FLAGS:
        common.add_argument(flag, dest=flag[2:].replace("-", "_"), default=argparse.SUPPRESS, metavar="FILE",
                            help=f"{text}, for https:// (default ${env})")
    parser = argparse.ArgumentParser(
        prog="stackfleet", parents=[common], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run OpenStack roles on a cluster of machines, fleet-style, on etcd.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, handler: Handler) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        p.set_defaults(func=handler)
        return p

    def table_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("-l", "--full", action="store_true", help="do not shorten machine IDs and hashes")
        p.add_argument("--no-legend", action="store_true", help="do not print the header row")
        p.add_argument("--fields", help="comma-separated columns to show")

    def block_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--no-block", action="store_true", help="return at once, do not wait for the units")
        p.add_argument("--block-attempts", type=count, default=0, metavar="N",
                       help="give up after N attempts (one a second); 0 waits forever (default)")

    table_flags(command("list-machines", "list the machines of the cluster and their metadata",
                        _read("listing.list_machines")))
    table_flags(command("list-units", "list the units with the machine and state they run in",
                        _read("listing.list_units")))
    table_flags(command("list-unit-files", "list the submitted units: hash, desired and current state, target",
                        _read("listing.list_unit_files")))

    p = command("submit", "upload unit files to the cluster without scheduling them", _cluster("jobs.submit"))
    p.add_argument("--replace", action="store_true", help="replace units already in the cluster with these versions")
    p.add_argument("units", nargs="+", metavar="UNIT")
    for verb, fn, text in (("load", "jobs.load", "schedule units to machines without starting them"),
                           ("start", "jobs.start", "submit if needed, schedule and start units")):
        p = command(verb, text, _cluster(fn))
        p.add_argument("--replace", action="store_true",
                       help="replace units already in the cluster with these versions")
        block_flags(p)
        p.add_argument("units", nargs="+", metavar="UNIT")
    for verb, fn, text in (("stop", "jobs.stop", "stop units; they stay scheduled (loaded)"),
                           ("unload", "jobs.unload", "stop units and unschedule them")):
        p = command(verb, text, _cluster(fn))
        block_flags(p)
        p.add_argument("units", nargs="+", metavar="UNIT")
    p = command("destroy", "stop units and remove them from the cluster", _cluster("jobs.destroy"))
    p.add_argument("units", nargs="+", metavar="UNIT")

    p = command("status", "show the state of units and the end of their journal", _read("status.status"))
    p.add_argument("--lines", "-n", type=count, default=10, help="journal lines to show (default 10)")
    p.add_argument("units", nargs="+", metavar="UNIT")
    p = command("cat", "print a unit file as the cluster has it", _cluster("inspect.cat"))
    p.add_argument("unit", metavar="UNIT")
    p = command("journal", "print the output of a unit, from the machine that runs it", _cluster("inspect.journal"))
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--lines", "-n", type=count, default=10, help="lines to show (default 10)")
    p.add_argument("unit", metavar="UNIT")
    p = command("connect", "open a shell (or run COMMAND) on the machine of a unit, or on a machine",
                _cluster("inspect.connect"))
    p.add_argument("target", metavar="UNIT|MACHINE")
    p.add_argument("remote_command", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                   help="run this instead of an interactive shell")
    p = command("verify", "check unit files offline: file:line errors, exit 1 if any is invalid; "
                "warnings name directives that are accepted and ignored", _local("verify.verify"))
    p.add_argument("--json", action="store_true",
                   help="print the parsed constraints as JSON, each unit with its warnings")
    p.add_argument("--strict", action="store_true",
                   help="treat warnings as errors: exit 1 if any unit sets a directive "
                        "that stackfleet accepts and ignores")
    p.add_argument("files", nargs="+", metavar="FILE")

    p = command("agent", "run the agent of this machine (started by the lab or by systemd)", _local("daemons.agent"))
    p.add_argument("--machine-id", help="default: /etc/machine-id")
    p.add_argument("--name", help="machine name (default: host name)")
    p.add_argument("--metadata", action="append", default=[], metavar="K=V[,K=V]",
                   help="machine metadata for MachineMetadata=, e.g. role=controller (repeatable)")
    p.add_argument("--public-ip", required=True, help="the address other machines reach this one at")
    p.add_argument("--state-dir", required=True, help="local state: runtime files, journals")
    p.add_argument("--shared-dir", required=True, help="storage shared by all machines (NFS in production)")
    p.add_argument("--ttl", type=lease_ttl, default=5, help="presence lease TTL in seconds (default 5, at least 2)")
    p.add_argument("--netns", help="network namespace of this machine (lab only)")
    p.add_argument("--unit-cert-file", metavar="FILE",
                   help="client certificate handed to the units that declare [X-Stackfleet] EtcdAccess=true "
                        "(with --unit-key-file; the CA is --ca-file's)")
    p.add_argument("--unit-key-file", metavar="FILE", help="the key of --unit-cert-file")
    p.add_argument("--private-dir", action="append", default=[], metavar="DIR",
                   help="a directory no unit sees, e.g. this machine's certificates (repeatable); the units "
                        "that declare EtcdAccess=true see in it only the CA and --unit-cert-file's pair")
    p = command("engine", "run an engine; the elected one places units on machines", _local("daemons.engine"))
    p.add_argument("--name", help="engine name (default: host name)")
    p.add_argument("--ttl", type=lease_ttl, default=5, help="leadership lease TTL in seconds (default 5, at least 2)")

    from .cluster import register as register_cluster  # argparse only; its commands import the rest

    register_cluster(sub, [common])

    if wanted not in sub.choices:
        from ..lab.cli import register as register_lab
        from ..openstack.commands import register as register_openstack

        register_lab(sub)
        register_openstack(sub, [common])
    return parser


# Bad input found before anything was sent: a malformed endpoint, unusable certificate files.
BAD_INPUT = (("stackfleet.registry.endpoints", "BadEndpoint"), ("stackfleet.registry.tlsfiles", "TLSConfigError"))
# etcd refused the client certificate's user: the operation failed, nothing changed.
DENIED = (("stackfleet.registry.endpoints", "AccessDenied"),)
# No endpoint answered, over gRPC or over the JSON gateway.
UNAVAILABLE = (("stackfleet.registry.endpoints", "EtcdUnavailable"),)


def _loaded(classes: tuple[tuple[str, str], ...]) -> list[type]:
    """Those of the (module, class) that are imported: an error of a class means its module ran."""
    return [getattr(sys.modules[module], name) for module, name in classes if module in sys.modules]


def reported_failure(err: Exception) -> int | None:
    """The exit code of an expected failure, printed for the user; None for a bug.

    Looked up in sys.modules: an error of those classes means that their module ran, and a
    command that never imported them (verify) does not import them to find out."""
    if isinstance(err, CommandError):
        print(f"stackfleet: {err}", file=sys.stderr)
        return int(err.code)
    if any(isinstance(err, kind) for kind in _loaded(BAD_INPUT + DENIED)):
        print(f"stackfleet: {err}", file=sys.stderr)
        return EXIT_FAILED
    if any(isinstance(err, kind) for kind in _loaded(UNAVAILABLE)):
        hint = getattr(err, "hint", None) or ("Is the cluster up? `stackfleet lab up` starts the built-in lab; "
                                              "--endpoint or $STACKFLEET_ENDPOINT select another cluster.")
        print(f"stackfleet: {err}\n  {hint}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return None


def export_tls_flags(args: argparse.Namespace) -> None:
    """--ca-file and the others win over the environment: set for this process, every command
    (and the libraries of the OpenStack commands) finds them where it finds the environment's."""
    for flag, env, _ in TLS_FLAGS:
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is not None:
            os.environ[env] = os.path.abspath(value)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(command_verb(argv))
    args = parser.parse_args(argv)
    if not hasattr(args, "endpoint"):
        args.endpoint = None
    export_tls_flags(args)
    # gRPC's own log lines (a failed TLS handshake, once per attempt) say what our error says.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        code = reported_failure(err)
        if code is None:
            raise
        return code


if __name__ == "__main__":
    sys.exit(main())
