"""What a runtime needs to run one service, taken from the [Service] section of a unit."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from stackfleet.unit.values import (
    ExecCommand,
    parse_boolean,
    parse_cpu_quota,
    parse_environment,
    parse_exec,
    parse_memory_max,
    parse_timespan,
)

RESTART_POLICIES = ("no", "always", "on-success", "on-failure", "on-abnormal", "on-abort",
                    "on-watchdog")
# notify and idle need a notify socket / job queue this runtime does not have: run as simple.
SERVICE_TYPES = ("simple", "exec", "notify", "notify-reload", "idle", "oneshot")

T = TypeVar("T")


class UnitLike(Protocol):
    """The part of a parsed unit that from_unit reads: values are already specifier-expanded,
    a key given several times yields several values."""

    @property
    def name(self) -> str: ...

    def get(self, section: str, key: str) -> list[str]: ...


@dataclass
class ServiceSpec:
    name: str
    exec_start: ExecCommand
    exec_start_pre: list[ExecCommand] = field(default_factory=list)
    exec_start_post: list[ExecCommand] = field(default_factory=list)
    exec_stop: list[ExecCommand] = field(default_factory=list)
    exec_stop_post: list[ExecCommand] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    # (path, optional): '-/path' in the unit means a missing file is no error.
    environment_files: list[tuple[str, bool]] = field(default_factory=list)
    restart: str = "no"
    restart_sec: float = 0.1
    timeout_start_sec: float = 90.0
    timeout_stop_sec: float = 90.0
    # '-' prefix: a missing directory is no error; '~' is the home directory.
    working_directory: str | None = None
    remain_after_exit: bool = False
    type: str = "simple"
    start_limit_interval_sec: float = 10.0
    start_limit_burst: int = 5
    # User=/Group=: a name or a numeric id; resolved when each command starts, like systemd.
    user: str | None = None
    group: str | None = None
    memory_max: int | None = None  # MemoryMax= in bytes; None is infinity
    cpu_quota: float | None = None  # CPUQuota= in CPUs: 0.2 for 20%, 2.0 for 200%
    # Set by the agent, not by the unit file: directories hidden from the unit, and the files in
    # them it keeps (its etcd certificate, if it declares EtcdAccess=true). See privatedirs.py.
    hidden_dirs: list[str] = field(default_factory=list)
    kept_files: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.restart not in RESTART_POLICIES:
            raise ValueError(f"Restart={self.restart}: use one of {', '.join(RESTART_POLICIES)}")
        if self.type not in SERVICE_TYPES:
            raise ValueError(
                f"Type={self.type} is not supported by this runtime: use one of "
                f"{', '.join(SERVICE_TYPES)} (for forking daemons, run them in the foreground)"
            )
        if self.type == "oneshot" and self.restart in ("always", "on-success"):
            raise ValueError(
                f"Restart={self.restart} is not allowed for Type=oneshot: use no or on-failure"
            )

    @classmethod
    def from_unit(cls, unit: UnitLike) -> ServiceSpec:
        def values(key: str, section: str = "Service") -> list[str]:
            return _after_last_reset(unit.get(section, key))

        def last(key: str, parse: Callable[[str], T], default: T, section: str = "Service") -> T:
            found = unit.get(section, key)
            if not found or not found[-1].strip():
                return default
            try:
                return parse(found[-1].strip())
            except ValueError as exc:
                raise ValueError(f"{unit.name}: [{section}] {key}={found[-1]}: {exc}") from None

        def commands(key: str) -> list[ExecCommand]:
            parsed = []
            for value in values(key):
                try:
                    parsed.append(parse_exec(value))
                except ValueError as exc:
                    raise ValueError(f"{unit.name}: [Service] {key}={value}: {exc}") from None
            return parsed

        starts = commands("ExecStart")
        if len(starts) != 1:
            raise ValueError(
                f"{unit.name}: [Service] needs exactly one ExecStart= line, found {len(starts)}; "
                "put further commands in ExecStartPre=/ExecStartPost="
            )
        timeout = last("TimeoutSec", _parse_timeout, 90.0)
        try:
            environment = parse_environment(unit.get("Service", "Environment"))
        except ValueError as exc:
            raise ValueError(f"{unit.name}: [Service] {exc}") from None
        fields = dict(
            name=unit.name,
            exec_start=starts[0],
            exec_start_pre=commands("ExecStartPre"),
            exec_start_post=commands("ExecStartPost"),
            exec_stop=commands("ExecStop"),
            exec_stop_post=commands("ExecStopPost"),
            environment=environment,
            environment_files=[_optional_path(v.strip()) for v in values("EnvironmentFile")],
            restart=last("Restart", _choice("Restart", RESTART_POLICIES), "no"),
            restart_sec=last("RestartSec", parse_timespan, 0.1),
            timeout_start_sec=last("TimeoutStartSec", _parse_timeout, timeout),
            timeout_stop_sec=last("TimeoutStopSec", _parse_timeout, timeout),
            working_directory=last("WorkingDirectory", str, None),
            remain_after_exit=last("RemainAfterExit", parse_boolean, False),
            type=last("Type", _choice("Type", SERVICE_TYPES), "simple"),
            start_limit_interval_sec=last(
                "StartLimitIntervalSec", parse_timespan,
                last("StartLimitInterval", parse_timespan, 10.0), section="Unit"),
            start_limit_burst=last("StartLimitBurst", _parse_count, 5, section="Unit"),
            user=last("User", _parse_account, None),
            group=last("Group", _parse_account, None),
            memory_max=last("MemoryMax", parse_memory_max, None),
            cpu_quota=last("CPUQuota", parse_cpu_quota, None),
        )
        try:
            return cls(**fields)  # type: ignore[arg-type]
        except ValueError as exc:
            # Checks across options (e.g. Type= with Restart=) are made by __post_init__.
            raise ValueError(f"{unit.name}: [Service] {exc}") from None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "exec_start": self.exec_start.to_json(),
            "exec_start_pre": [c.to_json() for c in self.exec_start_pre],
            "exec_start_post": [c.to_json() for c in self.exec_start_post],
            "exec_stop": [c.to_json() for c in self.exec_stop],
            "exec_stop_post": [c.to_json() for c in self.exec_stop_post],
            "environment": dict(self.environment),
            "environment_files": [[path, optional] for path, optional in self.environment_files],
            "restart": self.restart,
            "restart_sec": self.restart_sec,
            "timeout_start_sec": self.timeout_start_sec,
            "timeout_stop_sec": self.timeout_stop_sec,
            "working_directory": self.working_directory,
            "remain_after_exit": self.remain_after_exit,
            "type": self.type,
            "start_limit_interval_sec": self.start_limit_interval_sec,
            "start_limit_burst": self.start_limit_burst,
            "user": self.user,
            "group": self.group,
            "memory_max": self.memory_max,
            "cpu_quota": self.cpu_quota,
            "hidden_dirs": list(self.hidden_dirs),
            "kept_files": list(self.kept_files),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ServiceSpec:
        def cmds(key: str) -> list[ExecCommand]:
            raw = data.get(key) or []
            assert isinstance(raw, list)
            return [ExecCommand.from_json(c) for c in raw]

        files = data.get("environment_files") or []
        assert isinstance(files, list)
        return cls(
            name=str(data["name"]),
            exec_start=ExecCommand.from_json(data["exec_start"]),  # type: ignore[arg-type]
            exec_start_pre=cmds("exec_start_pre"),
            exec_start_post=cmds("exec_start_post"),
            exec_stop=cmds("exec_stop"),
            exec_stop_post=cmds("exec_stop_post"),
            environment=dict(data.get("environment") or {}),  # type: ignore[call-overload]
            environment_files=[(str(p), bool(o)) for p, o in files],
            restart=str(data.get("restart", "no")),
            restart_sec=float(data.get("restart_sec", 0.1)),  # type: ignore[arg-type]
            timeout_start_sec=float(data.get("timeout_start_sec", 90.0)),  # type: ignore[arg-type]
            timeout_stop_sec=float(data.get("timeout_stop_sec", 90.0)),  # type: ignore[arg-type]
            working_directory=data.get("working_directory"),  # type: ignore[arg-type]
            remain_after_exit=bool(data.get("remain_after_exit", False)),
            type=str(data.get("type", "simple")),
            start_limit_interval_sec=float(
                data.get("start_limit_interval_sec", 10.0)),  # type: ignore[arg-type]
            start_limit_burst=int(data.get("start_limit_burst", 5)),  # type: ignore[call-overload]
            user=_optional_str(data.get("user")),
            group=_optional_str(data.get("group")),
            memory_max=_optional(_json_int, data.get("memory_max")),
            cpu_quota=_optional(_json_float, data.get("cpu_quota")),
            hidden_dirs=[str(d) for d in data.get("hidden_dirs") or []],  # type: ignore[attr-defined]
            kept_files=[str(f) for f in data.get("kept_files") or []],  # type: ignore[attr-defined]
        )


def _parse_account(text: str) -> str:
    # systemd's valid_user_group_name(), relaxed: a name the passwd/group files could hold.
    if not text or text.startswith("-") or any(c in text for c in ":/\n\0 ") or len(text) > 256:
        raise ValueError("expected a user or group name, or a numeric id")
    return text


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _optional(kind: Callable[[object], T], value: object) -> T | None:
    return None if value is None else kind(value)


def _json_int(value: object) -> int:
    if not isinstance(value, int | str):
        raise ValueError(f"not a whole number: {value!r}")
    return int(value)


def _json_float(value: object) -> float:
    if not isinstance(value, int | float | str):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def _after_last_reset(values: list[str]) -> list[str]:
    """systemd: assigning the empty string to a list option drops what was set before."""
    for index in range(len(values) - 1, -1, -1):
        if not values[index].strip():
            return values[index + 1 :]
    return values


def _optional_path(value: str) -> tuple[str, bool]:
    return (value[1:], True) if value.startswith("-") else (value, False)


def _parse_timeout(text: str) -> float:
    # systemd: 0 disables a start/stop timeout, like "infinity".
    seconds = parse_timespan(text)
    return math.inf if seconds == 0 else seconds


def _parse_count(text: str) -> int:
    if not text.isdigit():
        raise ValueError("expected a whole number >= 0")
    return int(text)


def _choice(key: str, allowed: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"unknown {key}: use one of {', '.join(allowed)}")
        return text

    return parse
