"""A process as another process can recognise it later: host, pid and its start identity
(from /proc), so a record outlives the process and a reused pid is told apart."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name, which may hold spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _process_start(pid: int) -> str | None:
    """What tells process ``pid`` apart from a later one given the same number: the boot id and
    its start time (clock ticks after boot, field 22) from /proc. None without /proc."""
    fields = _proc_stat(pid)
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return f"{boot}:{fields[19]}" if fields else None


@dataclass(frozen=True)
class ProcessRecord:
    """A process as another process can recognise it later (host, pid, start identity)."""

    host: str
    pid: int
    started: str | None

    @classmethod
    def current(cls) -> ProcessRecord:
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()))

    def gone(self) -> bool | None:
        """True when the process has certainly ended, False when it runs, None when this
        machine cannot tell (the process ran on another host)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            pass
        fields = _proc_stat(self.pid)
        if fields and fields[0] == "Z":  # killed, not yet reaped by its parent
            return True
        now = _process_start(self.pid)
        return self.started is not None and now is not None and now != self.started
