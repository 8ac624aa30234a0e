"""What stackfleet's runtime does with each directive: the one table, and the findings it gives.

systemd knows many directives our runtime (runtime/spec.py, runtime/shim.py) does not
implement. Each known [Unit], [Service] and [Install] directive is listed here once, as

- SUPPORTED: the runtime does what systemd does, or there is nothing to do (metadata);
- IGNORED: accepted, so systemd units keep working, but it has no effect: verify warns;
- REFUSED: a unit that sets it cannot run here: verify, submit and start refuse it.

When the runtime implements a directive (as it did User= and MemoryMax=), flip its row to
SUPPORTED and its warning is gone. The schema's list of known keys is this table's keys.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .errors import UnitError
from .names import UnitName
from .parser import Entry, Section, effective
from .specifiers import uses_instance


class Support(Enum):
    SUPPORTED = "supported"
    IGNORED = "ignored"
    REFUSED = "refused"


@dataclass(frozen=True)
class Directive:
    support: Support
    # For IGNORED and REFUSED: what happens instead, or what to write; shown as the hint.
    note: str = ""
    # Values whose support differs from the directive's own (Type=forking is refused).
    values: dict[str, Directive] = field(default_factory=dict)


SUPPORTED = Directive(Support.SUPPORTED)


def _ignored(note: str) -> Directive:
    return Directive(Support.IGNORED, note)


def _refused(note: str) -> Directive:
    return Directive(Support.REFUSED, note)


_DEPENDENCY = _ignored("stackfleet orders and pulls in no units; "
                       "place units with [X-Fleet] MachineOf= or Conflicts=")
_JOB = _ignored("stackfleet has no systemd job queue or unit actions")
_CONDITION = _ignored("the unit starts without this check")
_NO_LIMIT = _ignored("the unit runs without this resource limit")
_SANDBOX = _ignored("the unit runs without this sandboxing")
_STOP = _ignored("stop runs ExecStop=, then sends SIGTERM to every process of the unit, "
                 "and SIGKILL after TimeoutStopSec=")
_EXIT = _ignored("only exit status 0 and SIGHUP, SIGINT, SIGTERM or SIGPIPE count as success, "
                 "as systemd's default")
_ENV = _ignored("the environment is the agent's base environment, Environment= and EnvironmentFile=")
_OUTPUT = _ignored("output goes to the unit's journal (stackfleet journal)")
_MAIN_PID = _ignored("the main process is the one ExecStart= starts")
_INSTALL = _ignored("units are started by stackfleet start, not enabled; fleet ignored [Install] too")
_SIMPLE = _ignored("it runs as Type=simple and counts as started once spawned: "
                   "stackfleet has no notify socket or idle queue")


def _rows(directive: Directive, *keys: str) -> dict[str, Directive]:
    return {key: directive for key in keys}


# section -> key -> Directive. A key ending in '*' is a family (ConditionPathExists=, ...).
DIRECTIVES: dict[str, dict[str, Directive]] = {
    "Unit": {
        **_rows(SUPPORTED, "Description", "Documentation", "SourcePath"),
        **_rows(SUPPORTED, "StartLimitIntervalSec", "StartLimitBurst"),
        **_rows(_DEPENDENCY, "Requires", "Requisite", "Wants", "BindsTo", "PartOf", "Upholds",
                "Conflicts", "Before", "After", "OnFailure", "OnSuccess", "PropagatesReloadTo",
                "ReloadPropagatedFrom", "JoinsNamespaceOf", "RequiresMountsFor",
                "OnFailureJobMode", "IgnoreOnIsolate", "StopWhenUnneeded", "AllowIsolate",
                "DefaultDependencies", "CollectMode"),
        **_rows(_ignored("stackfleet start and stop always act"),
                "RefuseManualStart", "RefuseManualStop"),
        **_rows(_JOB, "FailureAction", "SuccessAction", "JobTimeoutSec", "JobRunningTimeoutSec",
                "JobTimeoutAction", "StartLimitAction", "RebootArgument"),
        **_rows(_CONDITION, "Condition*", "Assert*"),
    },
    "Service": {
        "Type": Directive(Support.SUPPORTED, values={
            "forking": _refused("the runtime follows the process ExecStart= starts: run the daemon "
                                "in the foreground, e.g. with its --foreground or --nodaemon "
                                "option, as Type=simple or Type=exec"),
            "dbus": _refused("stackfleet has no D-Bus: use Type=simple or Type=exec"),
            "notify": _SIMPLE, "notify-reload": _SIMPLE, "idle": _SIMPLE,
        }),
        "Restart": Directive(Support.SUPPORTED, values={
            "on-watchdog": _ignored("stackfleet has no watchdog, so the unit is never restarted: "
                                    "use Restart=on-failure"),
        }),
        **_rows(SUPPORTED, "RemainAfterExit", "ExecStartPre", "ExecStart", "ExecStartPost",
                "ExecStop", "ExecStopPost", "RestartSec", "TimeoutStartSec", "TimeoutStopSec",
                "TimeoutSec", "Environment", "EnvironmentFile", "WorkingDirectory"),
        "ExecCondition": _ignored("the unit starts without running it"),
        "ExecReload": _ignored("stackfleet has no reload"),
        **_rows(_MAIN_PID, "ExitType", "GuessMainPID", "PIDFile", "BusName", "NotifyAccess"),
        **_rows(_ignored("stackfleet enforces only the start and stop timeouts"),
                "TimeoutAbortSec", "RuntimeMaxSec", "WatchdogSec"),
        **_rows(_EXIT, "SuccessExitStatus", "RestartPreventExitStatus", "RestartForceExitStatus"),
        **_rows(SUPPORTED, "User", "Group", "MemoryMax", "CPUQuota"),
        "SupplementaryGroups": _ignored("the unit gets the groups of User= and Group= only"),
        "PermissionsStartOnly": _ignored("every command runs as User="),
        **_rows(_ENV, "PassEnvironment", "UnsetEnvironment"),
        **_rows(_SANDBOX, "RootDirectory", "PrivateTmp", "ProtectSystem", "ProtectHome",
                "NoNewPrivileges", "UMask"),
        **_rows(_NO_LIMIT, "Nice", "OOMScoreAdjust", "TasksMax", "MemoryLimit",
                "CPUShares", "CPUWeight", "Slice", "Delegate", "Limit*"),
        **_rows(_STOP, "KillMode", "KillSignal", "RestartKillSignal", "FinalKillSignal",
                "SendSIGKILL", "SendSIGHUP"),
        **_rows(_OUTPUT, "StandardInput", "StandardOutput", "StandardError", "SyslogIdentifier",
                "SyslogFacility", "SyslogLevel"),
        # systemd's old places: the runtime falls back to StartLimitInterval= here, but reads
        # StartLimitBurst= from [Unit] only.
        "StartLimitInterval": SUPPORTED,
        "StartLimitBurst": _ignored("the runtime reads it from [Unit] only: move it there"),
    },
    "Install": _rows(_INSTALL, "WantedBy", "RequiredBy", "UpheldBy", "Alias", "Also",
                     "DefaultInstance"),
}
# The only unit type the runtime runs (runtime/spec.py reads [Service]).
RUNNABLE_TYPES = ("service",)
# Restart= values the runtime refuses for Type=oneshot (runtime/spec.py ServiceSpec).
ONESHOT_REFUSED_RESTARTS = ("always", "on-success")


def directive(section: str, key: str) -> Directive | None:
    """The row of a key, exact or by family; None for a key systemd does not know either."""
    rows = DIRECTIVES.get(section, {})
    if key in rows:
        return rows[key]
    family = next((prefix for prefix in rows if prefix.endswith("*")
                   and key.startswith(prefix[:-1]) and len(key) > len(prefix) - 1), None)
    return rows[family] if family else None


@dataclass
class Findings:
    """What the table says about one unit: errors make it unrunnable, warnings do not."""

    errors: list[UnitError] = field(default_factory=list)
    warnings: list[UnitError] = field(default_factory=list)


def _key_findings(section: str, entries: list[Entry], name: UnitName, path: str,
                  out: Findings) -> None:
    """entries: those of one key still in effect; a value row judges the last, which counts."""
    row = directive(section, entries[0].key)
    if row is None:
        return
    for entry in entries:
        found, shown = row, f"{entry.key}="
        value_row = row.values.get(entry.value) if entry is entries[-1] else None
        if value_row is not None and not (name.is_template and uses_instance(entry.raw)):
            found, shown = value_row, f"{entry.key}={entry.value}"
        if found.support is Support.IGNORED:
            out.warnings.append(UnitError(path, entry.line, f"{shown} is accepted and ignored",
                                          found.note))
        elif found.support is Support.REFUSED:
            out.errors.append(UnitError(path, entry.line, f"{shown} is not supported by stackfleet",
                                        found.note))


def _last(entries: list[Entry], key: str) -> Entry | None:
    found = effective([e for e in entries if e.key == key])
    return found[-1] if found else None


def _service_findings(service: Section, path: str, out: Findings) -> None:
    """Rules across directives that the runtime enforces when it builds a ServiceSpec."""
    entries = list(service.entries)
    type_ = _last(entries, "Type")
    if type_ is None or type_.value != "oneshot":
        return
    starts = effective([e for e in entries if e.key == "ExecStart"])
    if len(starts) > 1:
        out.errors.append(UnitError(path, starts[1].line,
                                    "more than one ExecStart= is not supported by stackfleet",
                                    "keep one ExecStart=; run the others from ExecStartPre= "
                                    "or ExecStartPost=, or from one script"))
    restart = _last(entries, "Restart")
    if restart is not None and restart.value in ONESHOT_REFUSED_RESTARTS:
        out.errors.append(UnitError(path, max(restart.line, type_.line),
                                    f"Restart={restart.value} cannot be used with Type=oneshot",
                                    "a oneshot unit is done when it exits: use Restart=no "
                                    "or Restart=on-failure, or a Type=simple unit"))


def support_findings(sections: tuple[Section, ...], name: UnitName, path: str) -> Findings:
    """The errors (cannot run here) and warnings (accepted and ignored) of a parsed unit."""
    out = Findings()
    if name.unit_type not in RUNNABLE_TYPES:
        out.errors.append(UnitError(path, 0, f"a .{name.unit_type} unit cannot run in stackfleet",
                                    "stackfleet runs .service units only; write a service"))
        return out
    for section in sections:
        by_key: dict[str, list[Entry]] = {}
        for entry in section.entries:
            by_key.setdefault(entry.key, []).append(entry)
        for entries in by_key.values():
            in_effect = effective(entries)
            if in_effect:
                _key_findings(section.name, in_effect, name, path, out)
    service = next((s for s in sections if s.name == "Service"), None)
    if service is not None:
        _service_findings(service, path, out)
    out.errors.sort(key=lambda e: e.line)
    out.warnings.sort(key=lambda e: e.line)
    return out
