"""A chaos probe unit's program: logs "MACHINE NANOSECONDS" every 0.1 s to a file of its own.

    python heartbeat.py DIR

Standard library only, and nothing from stackfleet: bench/chaos.py copies this file to the
shared storage and units run it from there with the lab's Python. The file is
DIR/MACHINE.PID.START, so every copy of the unit (one process) has its own; each beat is one
write(2), fsynced before the next, so the last beat on disk is the last one the copy lived to
log. lab/chaos.py reads them.
"""
from __future__ import annotations

import os
import sys
import time

INTERVAL = 0.1


def main(directory: str) -> None:
    machine = os.environ.get("STACKFLEET_MACHINE_NAME", "unknown")
    start = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{machine}.{os.getpid()}.{start}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    while True:
        os.write(fd, f"{machine} {time.clock_gettime_ns(time.CLOCK_BOOTTIME)}\n".encode())
        os.fsync(fd)
        time.sleep(INTERVAL)


if __name__ == "__main__":
    main(sys.argv[1])
