"""The CLI's exit codes and its user-facing error: standard library only.

Every command module imports these, and `verify` or a read over the JSON gateway must not pay
for the etcd client (aetcd, gRPC) to get them.
"""
from __future__ import annotations

# Exit codes that scripts can rely on (also listed in `stackfleet --help` and README).
EXIT_OK = 0
EXIT_FAILED = 1  # bad input (nothing was changed), or the operation did not succeed
EXIT_USAGE = 2  # argparse refused the command line
EXIT_NOT_ACTIVE = 3  # status: the unit is not running (systemctl's convention)
EXIT_NO_SUCH_UNIT = 4
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the cluster (etcd) cannot be reached


class CommandError(Exception):
    """A user-facing failure: printed as `stackfleet: message`, no traceback."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code
