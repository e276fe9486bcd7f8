"""Fault injection for the crash tests: kill the process at the N-th atomic lake write.

Every file the lake writes goes through :meth:`meterlake.lake.Lake.write_file` (or
``write_text``), which calls :func:`before_replace` after the new file is staged and
fsynced and before it is moved into place. With ``METERLAKE_FAULT_KILL_AT_WRITE=N`` in
the environment the process sends itself ``SIGKILL`` at the N-th such call: the staged
file stays behind and the target keeps its old content, exactly as after a power cut or
``kill -9`` at that moment. Unset (always, outside tests), the hook is one dict lookup.
``METERLAKE_FAULT_COUNT_FILE=PATH`` appends one line per write to PATH, so a test can
count a clean run's writes and spread its kill points over them.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

KILL_AT = "METERLAKE_FAULT_KILL_AT_WRITE"
COUNT_FILE = "METERLAKE_FAULT_COUNT_FILE"

_writes = 0
#: writes may run on several threads (:meth:`meterlake.lake.Lake.write_partitions`)
_count_lock = threading.Lock()


def before_replace(target: Path) -> None:
    """Called by every atomic lake write just before its rename."""
    global _writes
    kill_at = os.environ.get(KILL_AT)
    count_file = os.environ.get(COUNT_FILE)
    if kill_at is None and count_file is None:
        return
    with _count_lock:
        _writes += 1
        n = _writes
        if count_file is not None:
            with open(count_file, "a", encoding="utf-8") as fh:
                fh.write(f"{n}\t{target}\n")
    if kill_at is not None and n == int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)
