"""What the lab costs at rest: its processes sorted into components, CPU and etcd request rates.

Pure: bench/idle.py reads /proc and each etcd member's /metrics twice; this turns the two
readings into per-component CPU (per cent of one core), RSS and per-second rates.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# The cluster core: what stackfleet itself runs, as against what it schedules.
CORE = ("agent", "engine", "shim", "supervisor", "etcd")
SHIM_MODULE = "stackfleet.runtime.shim"
INTERPRETER = re.compile(r"^python[0-9.]*$")
PROMETHEUS_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
PROMETHEUS_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class ProcSample:
    """One process at one instant, from /proc/PID/{stat,cmdline} (times in clock ticks)."""

    pid: int
    start: int  # since boot: a reused PID has another start
    own: int  # utime + stime
    reaped: int  # cutime + cstime: children that ended and were waited for
    rss: int  # bytes
    comm: str
    argv: tuple[str, ...]
    machine: str | None  # the lab machine whose network namespace it runs in


def consumed(before: ProcSample | None, after: ProcSample) -> int:
    """Clock ticks the process and the children it reaped used between the two samples.

    A process born in the window (no earlier sample of the same start) counts from zero. A
    child that ends in the window is counted in its parent's `reaped`, so short-lived helpers
    (health probes, `ip`) are charged to whoever ran them.
    """
    if before is None or before.start != after.start:
        return after.own + after.reaped
    return (after.own - before.own) + (after.reaped - before.reaped)


def program(argv: tuple[str, ...], comm: str) -> str:
    """The program's name: a script's or module's for an interpreter, else the binary's."""
    if not argv:
        return comm
    if len(argv) == 1 and " " in argv[0]:
        # Retitled (setproctitle), as OpenStack's services do: "nova-conductor: ... worker(0)",
        # "neutron-l3-agent (/venv/bin/python3 /venv/bin/neutron-l3-agent ...)".
        return argv[0].split()[0].rstrip(":")
    if not INTERPRETER.match(os.path.basename(argv[0])):
        return os.path.basename(argv[0])
    words = iter(argv[1:])
    for word in words:
        if word == "-m":
            return next(words, comm)
        if not word.startswith("-"):
            return os.path.basename(word)
    return comm


def component(sample: ProcSample, recorded: Mapping[int, str]) -> str:
    """Which part of the lab a process is.

    `recorded` maps the PIDs the lab knows by name (its supervisor, and the daemons it started:
    etcd, engine, agent) to that name; the rest are told by their command line.
    """
    if sample.pid in recorded:
        return recorded[sample.pid]
    name = program(sample.argv, sample.comm)
    if name == SHIM_MODULE:
        return "shim"
    if name == "stackfleet" and sample.argv[-3:-1] == ("role", "run"):
        return f"role runner ({sample.argv[-1]})"
    if name == "uwsgi" and "--module" in sample.argv:
        module = sample.argv[sample.argv.index("--module") + 1]
        return f"uwsgi {module.partition('.')[0].partition(':')[0]}"
    return name


@dataclass(frozen=True)
class Usage:
    name: str
    processes: int
    cpu_percent: float  # of one core, over the window
    rss: int  # bytes, at the end of the window

    @property
    def core(self) -> bool:
        return self.name in CORE


def usage_by_component(
    before: Iterable[ProcSample],
    after: Iterable[ProcSample],
    recorded: Mapping[int, str],
    seconds: float,
    hz: int,
) -> list[Usage]:
    """Per component, the most expensive first; processes are those alive at the end."""
    earlier = {s.pid: s for s in before}
    ticks: dict[str, int] = {}
    rss: dict[str, int] = {}
    count: dict[str, int] = {}
    for s in after:
        name = component(s, recorded)
        ticks[name] = ticks.get(name, 0) + consumed(earlier.get(s.pid), s)
        rss[name] = rss.get(name, 0) + s.rss
        count[name] = count.get(name, 0) + 1
    rows = [Usage(n, count[n], 100.0 * ticks[n] / hz / seconds, rss[n]) for n in ticks]
    return sorted(rows, key=lambda u: (-u.cpu_percent, u.name))


def total(rows: Iterable[Usage], name: str) -> Usage:
    rows = list(rows)
    return Usage(name, sum(r.processes for r in rows), sum(r.cpu_percent for r in rows), sum(r.rss for r in rows))


def busy_ticks(proc_stat: str) -> int:
    """Non-idle ticks of all CPUs from /proc/stat: the machine's load, ours and everyone's."""
    fields = [int(f) for f in proc_stat.splitlines()[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user).
    return sum(fields[:8]) - fields[3] - fields[4]


# -- etcd's /metrics --------------------------------------------------------------------------

Series = tuple[str, tuple[tuple[str, str], ...]]  # (metric name, sorted labels)


def parse_metrics(text: str) -> dict[Series, float]:
    """Prometheus text exposition: one value per series (comments and bad lines skipped)."""
    series: dict[Series, float] = {}
    for line in text.splitlines():
        match = PROMETHEUS_LINE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        try:
            series[(name, tuple(sorted(PROMETHEUS_LABEL.findall(labels or ""))))] = float(value)
        except ValueError:
            continue
    return series


def rate_by(
    before: Mapping[Series, float],
    after: Mapping[Series, float],
    seconds: float,
    name: str,
    labels: tuple[str, ...] = (),
) -> dict[tuple[str, ...], float]:
    """Per-second increase of counter `name`, summed over every label but `labels`.

    A series that is new in `after` counts from zero (etcd creates them on first use).
    """
    rates: dict[tuple[str, ...], float] = {}
    for (metric, pairs), value in after.items():
        if metric != name:
            continue
        key = tuple(dict(pairs).get(label, "") for label in labels)
        rates[key] = rates.get(key, 0.0) + (value - before.get((metric, pairs), 0.0)) / seconds
    return rates


def gauge(metrics: Mapping[Series, float], name: str) -> float | None:
    return next((v for (metric, _), v in metrics.items() if metric == name), None)


def with_raft_timers(tuning: tuple[str, ...], heartbeat_ms: int, election_ms: int) -> tuple[str, ...]:
    """etcd's flags with the two raft timers replaced (or added)."""
    kept = tuple(f for f in tuning if not f.startswith(("--heartbeat-interval=", "--election-timeout=")))
    return (*kept, f"--heartbeat-interval={heartbeat_ms}", f"--election-timeout={election_ms}")


ETCD_DEFAULT_TIMERS = (100, 1000)  # etcd's own --heartbeat-interval, --election-timeout (ms)


def raft_timers(argv: Iterable[str]) -> tuple[int, int]:
    """(heartbeat, election timeout) in ms that an etcd command line runs with."""
    heartbeat, election = ETCD_DEFAULT_TIMERS
    for word in argv:
        flag, _, value = word.partition("=")
        if flag == "--heartbeat-interval":
            heartbeat = int(value)
        elif flag == "--election-timeout":
            election = int(value)
    return heartbeat, election
