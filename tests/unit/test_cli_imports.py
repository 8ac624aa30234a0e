"""The CLI imports only what a command needs: offline commands never load the etcd client."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stackfleet.cli.main import build_parser, command_verb

EXAMPLE = Path(__file__).resolve().parents[2] / "units" / "examples" / "beacon.service"
HEAVY = ("grpc", "aetcd", "stackfleet.registry.store")


def loaded_after(*argv: str, among: tuple[str, ...] = HEAVY) -> set[str]:
    """Which of `among` a fresh interpreter holds after running `stackfleet argv`."""
    probe = (
        "import sys, contextlib, io\n"
        "from stackfleet.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({list(argv)!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(','.join(m for m in {among!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return {m for m in out.stdout.strip().split(",") if m}


@pytest.mark.parametrize("argv", [["--help"], ["verify", str(EXAMPLE)], ["verify", "--help"], ["list-units", "--help"],
                                  ["status", "--help"], ["lab", "--help"]])
def test_offline_commands_do_not_load_the_etcd_client(argv: list[str]) -> None:
    assert loaded_after(*argv) == set()


def test_help_lists_the_lab_without_loading_it() -> None:
    assert loaded_after("--help", among=("stackfleet.lab.ops", "stackfleet.lab.client")) == set()


def test_finding_the_cluster_by_itself_reads_the_lab_file_without_the_runtime(tmp_path: Path) -> None:
    # What every command given no endpoint does first: it looks for a running lab.
    probe = ("import sys\nfrom stackfleet.discovery import resolve_endpoints\n"
             "print(resolve_endpoints(), 'stackfleet.runtime' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("STACKFLEET_ENDPOINT", "STACKFLEET_ENDPOINTS")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True,
                         env={**env, "STACKFLEET_LAB_ROOT": str(tmp_path)})
    assert out.stdout.split() == ["['http://127.0.0.1:2379']", "False"], out.stderr


def test_the_command_word_skips_options_and_the_endpoint_value() -> None:
    assert command_verb(["--endpoint", "http://x:2379", "list-units", "-l"]) == "list-units"
    assert command_verb(["--endpoints=http://x:2379", "status", "a.service"]) == "status"
    assert command_verb(["--help"]) is None
    assert command_verb([]) is None


def test_core_verbs_leave_out_the_lab_and_openstack_commands_which_help_lists() -> None:
    def verbs(parser: object) -> set[str]:
        sub = next(a for a in parser._actions if a.dest == "verb")  # type: ignore[attr-defined]
        return set(sub.choices)

    assert {"lab", "config", "role"} <= verbs(build_parser(None))
    assert {"lab", "config", "role"} <= verbs(build_parser("bogus"))
    assert not {"lab", "config", "role"} & verbs(build_parser("list-units"))
    assert "list-units" in verbs(build_parser("list-units"))


@pytest.mark.parametrize("verb", [["list-units"], ["list-machines"], ["list-unit-files"], ["status", "x.service"]])
def test_read_only_verbs_go_over_the_json_gateway_without_grpc_or_asyncio(verb: list[str]) -> None:
    from stackfleet.registry.localetcd import free_port

    # An unreachable endpoint: the verb runs its whole read path, then reports exit 69.
    assert loaded_after("--endpoint", f"http://127.0.0.1:{free_port()}", *verb) == set()
    probe = ("import sys\nfrom stackfleet.cli.main import main\n"
             f"code = main(['--endpoint', 'http://127.0.0.1:{free_port()}', *{verb!r}])\n"
             "print(code, 'asyncio' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["69", "False"], out.stderr
