"""What a unit's command does in the forked child, between fork() and exec().

Everything that may touch shared storage or a name service happens here, in the child:
reading EnvironmentFile=, resolving User=/Group=, entering WorkingDirectory=, finding the
program. A hung NFS mount then hangs only the child, never the shim, whose loop keeps
enforcing the fence's deadlines (it can kill the child like any other process of the unit).

The child first joins the unit's cgroup, so that nothing it becomes can escape the unit. A
failure before exec is reported to the shim on a close-on-exec pipe as "result\\nmessage",
then the child exits with systemd's status for that step (200/CHDIR, 203/EXEC, 217/USER...).
"""
from __future__ import annotations

import grp
import os
import pwd
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from stackfleet.runtime import privatedirs
from stackfleet.runtime.cgroup import Group
from stackfleet.runtime.policy import EXIT_CGROUP, EXIT_CHDIR, EXIT_EXEC, EXIT_GROUP, EXIT_NAMESPACE, EXIT_USER
from stackfleet.unit.values import ExecCommand, decode_environment_file, expand_argv

EXIT_RESOURCES = 1  # systemd fails the unit with result 'resources' before any command runs
# Python ignores these for itself; a program must start with the default disposition.
_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                  signal.SIGCHLD)


@dataclass
class Launch:
    """One command of a unit, with everything needed to start it."""

    cmd: ExecCommand
    base_environment: dict[str, str]
    environment: dict[str, str] = field(default_factory=dict)
    environment_files: list[tuple[str, bool]] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)  # $MAINPID, $SERVICE_RESULT...
    working_directory: str | None = None
    user: str | None = None
    group: str | None = None
    cgroup: Group | None = None
    hidden_dirs: list[str] = field(default_factory=list)  # see privatedirs.py
    kept_files: list[str] = field(default_factory=list)


class ChildError(Exception):
    def __init__(self, status: int, result: str, message: str) -> None:
        super().__init__(message)
        self.status, self.result, self.message = status, result, message


@dataclass(frozen=True)
class Credentials:
    uid: int | None
    gid: int | None
    groups: list[int]
    environment: dict[str, str]  # $USER, $LOGNAME, $HOME, $SHELL for User=


def exec_child(launch: Launch, out_fd: int, report_fd: int) -> NoReturn:
    """Become the command; on failure write the report and exit. Never returns."""
    try:
        signal.set_wakeup_fd(-1)
        for signum in _RESET_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        if launch.cgroup is not None:
            try:
                launch.cgroup.join()
            except OSError as exc:
                raise ChildError(EXIT_CGROUP, "resources",
                                 f"Failed to join cgroup {launch.cgroup.path}: {exc.strerror}") from None
        os.setpgid(0, 0)  # its own group, to be signalled as a whole
        creds = credentials(launch.user, launch.group)
        try:  # before EnvironmentFile= is read: a file in a hidden directory is hidden from it too
            privatedirs.hide(launch.hidden_dirs, launch.kept_files, creds.uid, creds.gid)
        except OSError as exc:  # fail closed: never run a unit that would see what it must not
            raise ChildError(EXIT_NAMESPACE, "resources", f"Failed to set up mount namespacing: {exc}") from None
        env = environment(launch, creds)
        argv = expand_argv(launch.cmd, env)
        cwd = working_directory(launch.working_directory, env)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        if cwd is not None:
            try:
                os.chdir(cwd)
            except OSError as exc:
                raise ChildError(EXIT_CHDIR, "exit-code", f"Failed to execute {argv[0]}: "
                                 f"{exc.strerror} (status={EXIT_CHDIR})") from None
        if creds.gid is not None:
            os.setgroups(creds.groups)
            os.setgid(creds.gid)
        if creds.uid is not None:
            os.setuid(creds.uid)
        execute(argv[0], [launch.cmd.argv0 or argv[0], *argv[1:]], env)
    except ChildError as failure:
        _report(report_fd, failure.result, failure.message)
        os._exit(failure.status)
    except BaseException as exc:  # anything else must still end the child, not run the shim
        _report(report_fd, "resources", f"Failed to start: {type(exc).__name__}: {exc}")
        os._exit(EXIT_RESOURCES)


def execute(program: str, argv: list[str], env: dict[str, str]) -> NoReturn:
    """execve(), searching $PATH for a bare name as systemd does."""
    candidates = ([program] if "/" in program
                  else [os.path.join(d, program) for d in os.get_exec_path(env)])
    error: OSError = FileNotFoundError(2, os.strerror(2))
    for candidate in candidates:
        try:
            os.execve(candidate, argv, env)
        except OSError as exc:
            error = exc
    raise ChildError(EXIT_EXEC, "exit-code",
                     f"Failed to execute {program}: {error.strerror} (status={EXIT_EXEC})")


def credentials(user: str | None, group: str | None) -> Credentials:
    entry: pwd.struct_passwd | None = None
    uid: int | None = None
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            if not user.isdigit():
                raise ChildError(EXIT_USER, "exit-code",
                                 f"Failed to determine user credentials: User={user} does not "
                                 f"exist (status={EXIT_USER}/USER)") from None
        uid = entry.pw_uid if entry is not None else int(user)
    gid: int | None = None
    if group is not None:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ChildError(EXIT_GROUP, "exit-code",
                             f"Failed to determine group credentials: Group={group} does not "
                             f"exist (status={EXIT_GROUP}/GROUP)") from None
    elif uid is not None:
        gid = entry.pw_gid if entry is not None else uid
    groups = os.getgrouplist(entry.pw_name, gid) if entry is not None and gid is not None else []
    env = {}
    if entry is not None:
        env = {"USER": entry.pw_name, "LOGNAME": entry.pw_name, "HOME": entry.pw_dir,
               "SHELL": entry.pw_shell}
    return Credentials(uid, gid, groups, env)


def environment(launch: Launch, creds: Credentials) -> dict[str, str]:
    env = dict(launch.base_environment)
    env.update(creds.environment)
    env.update(launch.environment)
    # Read at each command, like systemd, so ExecStartPre= can write a file ExecStart= reads.
    for path, optional in launch.environment_files:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            if optional:
                continue
            raise ChildError(EXIT_RESOURCES, "resources",
                             f"Failed to load environment file {path}: {exc.strerror}") from None
        try:
            env.update(decode_environment_file(data))
        except ValueError as exc:
            raise ChildError(EXIT_RESOURCES, "resources",
                             f"Bad environment file {path}: {exc}") from None
    env.update(launch.extra)
    return env


def working_directory(directory: str | None, env: dict[str, str]) -> str | None:
    if not directory:
        return None
    optional = directory.startswith("-")
    directory = directory.removeprefix("-")
    if directory == "~":
        directory = env.get("HOME", "/")
    if optional and not os.path.isdir(directory):
        return None
    return directory


def _report(fd: int, result: str, message: str) -> None:
    try:
        os.write(fd, f"{result}\n{message}".encode("utf-8", errors="replace"))
    except OSError:
        pass


def parse_report(data: bytes) -> tuple[str, str] | None:
    """(result, message) from a child's report; None for an empty one (the exec succeeded)."""
    if not data:
        return None
    result, _, message = data.decode("utf-8", errors="replace").partition("\n")
    return result, message
