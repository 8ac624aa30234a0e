"""The idle bench's arithmetic: /proc samples to CPU per component, /metrics to rates."""
from __future__ import annotations

import pytest

from stackfleet.lab.processes import ETCD_TUNING
from stackfleet.lab.usage import (
    ProcSample,
    busy_ticks,
    component,
    consumed,
    gauge,
    parse_metrics,
    program,
    raft_timers,
    rate_by,
    total,
    usage_by_component,
    with_raft_timers,
)
from stackfleet.runtime import procfs

# A real /proc/PID/stat line, with a command name that holds a space and a parenthesis.
STAT = ("7369 (my (odd) prog) S 7343 7343 7343 0 -1 4194560 5012 120 0 0 "
        "311 47 9 3 20 0 3 0 44156 3133440 417 18446744073709551615 0 0 0")


def sample(pid: int, own: int, reaped: int = 0, start: int = 1, argv: tuple[str, ...] = ("x",),
           rss: int = 0, comm: str = "x") -> ProcSample:
    return ProcSample(pid, start, own, reaped, rss, comm, argv, "controller-01")


def test_stat_fields_are_read_after_the_last_parenthesis() -> None:
    stat = procfs.parse_stat(7, STAT)
    assert (stat.comm, stat.start_time, stat.cpu_ticks, stat.reaped_ticks, stat.rss_pages) == (
        "my (odd) prog", 44156, 311 + 47, 9 + 3, 417)


def test_consumed_counts_the_window_and_what_ended_children_used() -> None:
    assert consumed(sample(1, 100, 10), sample(1, 130, 15)) == 35
    assert consumed(None, sample(1, 30, 5)) == 35  # born in the window
    assert consumed(sample(1, 900, start=1), sample(1, 30, start=2)) == 30  # PID reused


@pytest.mark.parametrize("argv, name", [
    (("/usr/sbin/mariadbd", "--basedir=/usr"), "mariadbd"),
    (("/venv/bin/python3", "/venv/bin/nova-conductor", "--config-file", "x"), "nova-conductor"),
    (("/venv/bin/python3", "-u", "-m", "stackfleet.runtime.shim", "/run/u"), "stackfleet.runtime.shim"),
    (("python3.11",), "comm"),
    (("nova-conductor: ServiceWrapper worker(0)",), "nova-conductor"),
    (("neutron-l3-agent (/venv/bin/python3 /venv/bin/neutron-l3-agent --config-file /etc/l3_agent.ini)",),
     "neutron-l3-agent"),
    ((), "comm"),
])
def test_program_names_the_script_of_an_interpreter(argv: tuple[str, ...], name: str) -> None:
    assert program(argv, "comm") == name


def test_components_come_from_the_lab_records_first_then_the_command_line() -> None:
    agent = sample(10, 0, argv=("/venv/bin/python3", "/venv/bin/stackfleet", "agent", "--name", "c1"))
    assert component(agent, {10: "agent"}) == "agent"
    assert component(agent, {}) == "stackfleet"
    shim = sample(11, 0, argv=("/venv/bin/python3", "-m", "stackfleet.runtime.shim", "/u"))
    assert component(shim, {}) == "shim"
    runner = sample(12, 0, argv=("/venv/bin/python3", "/venv/bin/stackfleet", "role", "run", "controller"))
    assert component(runner, {}) == "role runner (controller)"
    api = sample(13, 0, argv=("/os/bin/uwsgi", "--home", "/os", "--module", "keystone.wsgi.api:application"))
    assert component(api, {}) == "uwsgi keystone"
    assert component(sample(14, 0, argv=("/usr/sbin/ovs-vswitchd", "unix:/x")), {}) == "ovs-vswitchd"


def test_usage_sums_per_component_in_per_cent_of_one_core() -> None:
    before = [sample(1, 100), sample(2, 0), sample(3, 50)]
    after = [sample(1, 200, rss=10), sample(2, 100, rss=5), sample(4, 300, rss=1, argv=("/bin/ovsdb-server",))]
    rows = usage_by_component(before, after, {1: "etcd", 2: "etcd"}, seconds=10, hz=100)
    assert [(r.name, r.processes, r.cpu_percent, r.rss, r.core) for r in rows] == [
        ("ovsdb-server", 1, 30.0, 1, False),
        ("etcd", 2, 20.0, 15, True),
    ]
    assert total(rows, "all").cpu_percent == 50.0


def test_busy_ticks_leave_out_idle_and_iowait() -> None:
    assert busy_ticks("cpu  10 1 5 1000 7 2 3 4 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n") == 10 + 1 + 5 + 2 + 3 + 4


METRICS_BEFORE = """\
# HELP grpc_server_started_total Total number of RPCs started on the server.
# TYPE grpc_server_started_total counter
grpc_server_started_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 100
grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 40
etcd_network_peer_sent_bytes_total{To="a"} 1000
etcd_network_peer_sent_bytes_total{To="b"} 2000
etcd_server_is_leader 1
"""
METRICS_AFTER = """\
grpc_server_started_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 160
grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 40
grpc_server_started_total{grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 5
etcd_network_peer_sent_bytes_total{To="a"} 1500
etcd_network_peer_sent_bytes_total{To="b"} 3500
etcd_server_is_leader 0
a broken line
"""


def test_rates_are_per_second_by_the_labels_asked_for_and_new_series_count_from_zero() -> None:
    before, after = parse_metrics(METRICS_BEFORE), parse_metrics(METRICS_AFTER)
    assert rate_by(before, after, 10, "grpc_server_started_total", ("grpc_method", "grpc_type")) == {
        ("LeaseKeepAlive", "bidi_stream"): 6.0,
        ("Range", "unary"): 0.0,
        ("Txn", "unary"): 0.5,
    }
    assert rate_by(before, after, 10, "etcd_network_peer_sent_bytes_total") == {(): 200.0}
    assert gauge(before, "etcd_server_is_leader") == 1.0
    assert gauge(after, "etcd_server_is_leader") == 0.0
    assert gauge(after, "absent") is None


def test_raft_timers_replace_the_labs_own() -> None:
    tuned = with_raft_timers(ETCD_TUNING, 100, 1000)
    assert [f for f in tuned if "heartbeat" in f or "election" in f] == [
        "--heartbeat-interval=100", "--election-timeout=1000"]
    assert set(tuned) - set(ETCD_TUNING) <= {"--heartbeat-interval=100", "--election-timeout=1000"}
    assert len(tuned) == len(ETCD_TUNING)


def test_raft_timers_are_read_from_the_command_line_with_etcds_defaults() -> None:
    assert raft_timers(("etcd", "--name=a", "--heartbeat-interval=20", "--election-timeout=200")) == (20, 200)
    assert raft_timers(with_raft_timers(("etcd",), 50, 500)) == (50, 500)
    assert raft_timers(("etcd", "--name=a")) == (100, 1000)
