"""The OpenStack commands: `role run`, `config set/get/show`, `data reset`, `openstack credentials`.

`register(subparsers)` adds them to the main `stackfleet` parser. Stand-alone (without the cluster),
`STACKFLEET_STANDALONE_DIR=DIR python -m stackfleet.openstack ...` keeps the settings in DIR.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from stackfleet import discovery
from stackfleet.confirm import deletion_confirmed
from stackfleet.openstack import settings as settings_mod
from stackfleet.openstack import shared_data
from stackfleet.openstack.configs import clouds_yaml, openrc
from stackfleet.openstack.link import ClusterLink, FileClusterLink
from stackfleet.openstack.role_context import RoleContext
from stackfleet.openstack.roles import OPENSTACK_ROLES, run_role

DEFAULT_STATE = "/var/lib/stackfleet/state"
EXIT_FAILED = 1  # README's table: bad input exits 1 and changes nothing (OpenStack code imports no CLI)


def _timeout(text: str) -> float:
    """--timeout: argparse refuses 0 or less as a usage error, as the CLI's own counts."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} seconds: give a timeout of more than 0 seconds")
    return value


def cluster_link_from_env(args: argparse.Namespace) -> ClusterLink:
    """THE ONE PLACE where the commands get their cluster link.

    Stand-alone: STACKFLEET_STANDALONE_DIR names a directory for FileClusterLink. Otherwise the
    cluster's etcd, found as every stackfleet command finds it (--endpoint, $STACKFLEET_ENDPOINT,
    the lab), with the settings key on the shared storage.
    """
    standalone = os.environ.get("STACKFLEET_STANDALONE_DIR")
    if standalone:
        return FileClusterLink(Path(standalone))
    # Imported here: it needs the cluster core's venv (cryptography, grpc).
    from stackfleet.openstack.etcdlink import EtcdClusterLink, key_file

    return EtcdClusterLink(discovery.open_registry(getattr(args, "endpoint", None)),
                           key_file(discovery.shared_dir()))


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def cmd_role_run(args: argparse.Namespace) -> int:
    if not args.address:
        print("role run: give --address or STACKFLEET_ADDRESS (this machine's management address)",
              file=sys.stderr)
        return 2
    shared_dir = Path(args.shared_dir) if args.shared_dir else discovery.shared_dir()
    ctx = RoleContext(address=args.address, shared_dir=shared_dir,
                      state_dir=Path(args.state_dir) / args.role, link=cluster_link_from_env(args))
    if args.host:
        ctx.host = args.host
    return run_role(args.role, ctx)


def cmd_config_set(args: argparse.Namespace) -> int:
    try:
        key, value = settings_mod.validate(args.key, args.value)
    except settings_mod.SettingsError as exc:
        print(f"config set: {exc}. Nothing was changed.", file=sys.stderr)
        return EXIT_FAILED
    asyncio.run(cluster_link_from_env(args).set_setting(key, value))
    print(f"{key} = {'********' if key in settings_mod.PASSWORD_KEYS else value}")
    return 0


def cmd_config_get(args: argparse.Namespace) -> int:
    try:
        key = settings_mod.normalize_key(args.key)
    except settings_mod.SettingsError as exc:
        print(f"config get: {exc}", file=sys.stderr)
        return EXIT_FAILED
    current = asyncio.run(cluster_link_from_env(args).settings())
    value = current.get(key, settings_mod.DEFAULTS.get(key))
    if value is None:
        print(f"config get: {key} is not set yet (generated at the first role start)",
              file=sys.stderr)
        return 1
    print(value)
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    current = {**settings_mod.DEFAULTS, **asyncio.run(cluster_link_from_env(args).settings())}
    for key, value in settings_mod.shown(current).items():
        print(f"{key} = {value}")
    return 0


async def running_controller(link: ClusterLink) -> str | None:
    """Where a controller role runs, by machine name, or None."""
    record = await link.controller()
    address, machine = record.get("address"), record.get("machine")
    if not address:
        return None
    return f"machine {machine} ({address})" if machine else f"the controller at {address}"


def cmd_data_reset(args: argparse.Namespace) -> int:
    shared = shared_data.SharedLayout(Path(args.shared_dir) if args.shared_dir
                                      else discovery.shared_dir())
    # An unreachable cluster raises here, before anything is deleted (the CLI's exit code for it).
    running = asyncio.run(running_controller(cluster_link_from_env(args)))
    if running:
        print(f"data reset: a controller role runs on this data on {running}. Stop it first "
              "(stackfleet stop controller.service). Nothing was deleted.", file=sys.stderr)
        return 1
    targets = shared_data.reset_targets(shared)
    if not targets:
        print(f"data reset: nothing to delete in {shared.root}")
        return 0
    print("data reset will DELETE the OpenStack data (databases, images, instances):")
    for path in targets:
        print(f"  {path}")
    if not args.yes and not deletion_confirmed("data reset:", "Nothing was deleted."):
        return 1
    shared_data.reset(shared)
    print("data reset: deleted. The next controller start makes a new, empty cloud.")
    return 0


async def _controller_address(link: ClusterLink, timeout: float) -> str | None:
    changes = link.controller_address_changes()
    try:
        return await asyncio.wait_for(anext(changes), timeout)
    except TimeoutError:
        return None
    finally:
        await changes.aclose()


def cmd_credentials(args: argparse.Namespace) -> int:
    link = cluster_link_from_env(args)
    # Read first: an unreachable etcd fails here (exit 69), not as a controller that never came.
    stored = asyncio.run(link.settings())
    address = asyncio.run(_controller_address(link, args.timeout))
    if address is None:
        print("openstack credentials: no controller has published its address yet",
              file=sys.stderr)
        return 1
    try:
        settings = settings_mod.parse(stored)
    except settings_mod.SettingsError as exc:
        print(f"openstack credentials: {exc}", file=sys.stderr)
        return 1
    if args.format in ("clouds", "both"):
        print("# clouds.yaml\n" + clouds_yaml(settings, address))
    if args.format in ("openrc", "both"):
        print("# openrc\n" + openrc(settings, address))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Adds the commands; `parents` give each of them the main parser's common options (--endpoint)."""
    role = subparsers.add_parser("role", help="run an OpenStack role on this machine")
    role_sub = role.add_subparsers(dest="role_command", required=True)
    run = role_sub.add_parser("run", help="run a role in the foreground until SIGTERM", parents=parents)
    run.add_argument("role", choices=list(OPENSTACK_ROLES))
    run.add_argument("--address", default=_env("STACKFLEET_ADDRESS") or _env("STACKFLEET_PUBLIC_IP"),
                     help="this machine's management address (env STACKFLEET_ADDRESS; a unit gets "
                          "STACKFLEET_PUBLIC_IP from its agent)")
    run.add_argument("--shared-dir", default=None,
                     help="the shared storage (default: $STACKFLEET_SHARED_DIR, the lab's, or "
                          f"{discovery.DEFAULT_SHARED})")
    run.add_argument("--state-dir", default=_env("STACKFLEET_STATE_DIR", DEFAULT_STATE))
    run.add_argument("--host", default=_env("STACKFLEET_HOST") or _env("STACKFLEET_MACHINE_NAME"),
                     help="this machine's name for Nova and Neutron (default: hostname)")
    run.set_defaults(func=cmd_role_run)

    config = subparsers.add_parser("config", help="cluster settings (HA_MODE, region, ...)")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    setp = config_sub.add_parser("set", help="set one setting, validated", parents=parents)
    setp.add_argument("key")
    setp.add_argument("value")
    setp.set_defaults(func=cmd_config_set)
    getp = config_sub.add_parser("get", help="print one setting (passwords too)", parents=parents)
    getp.add_argument("key")
    getp.set_defaults(func=cmd_config_get)
    config_sub.add_parser("show", help="all settings, passwords masked", parents=parents).set_defaults(
        func=cmd_config_show)

    data = subparsers.add_parser("data", help="the shared OpenStack data")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    reset = data_sub.add_parser("reset", help="delete the shared data (asks first)", parents=parents)
    reset.add_argument("--yes", action="store_true", help="do not ask")
    reset.add_argument("--shared-dir", default=None,
                       help="the shared storage (default: $STACKFLEET_SHARED_DIR, the lab's, or "
                            f"{discovery.DEFAULT_SHARED})")
    reset.set_defaults(func=cmd_data_reset)

    os_cmd = subparsers.add_parser("openstack", help="the admin's way into the cloud")
    os_sub = os_cmd.add_subparsers(dest="openstack_command", required=True)
    cred = os_sub.add_parser("credentials", help="print a clouds.yaml entry and an openrc",
                             parents=parents)
    cred.add_argument("--format", choices=("clouds", "openrc", "both"), default="both")
    cred.add_argument("--timeout", type=_timeout, default=5.0,
                      help="how long to wait for a controller to publish its address (default 5)")
    cred.set_defaults(func=cmd_credentials)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stackfleet")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
