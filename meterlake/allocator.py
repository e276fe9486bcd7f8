"""The options of polars' allocator (jemalloc), set before polars is loaded.

polars reads ``_RJEM_MALLOC_CONF`` once, when it is imported: its own defaults
(``dirty_decay_ms:500,muzzy_decay_ms:1000``) and then whatever the variable held, the
later option winning. With those defaults, pages a stage freed stay in the process's
resident set for a second or more: first as *dirty* pages, and then as *muzzy* ones
(``MADV_FREE``), which the kernel takes back only under memory pressure and which count
in the RSS until then. So when one process runs every stage, each stage starts on top
of what the previous ones freed, and the run's peak is well above any stage's live
memory.

:func:`options` has jemalloc's background threads (polars' build starts them already;
the option says so explicitly) give freed pages back after :data:`DIRTY_DECAY_MS`,
and straight to the kernel (``MADV_DONTNEED``, no muzzy state); and it gives jemalloc
one arena per CPU instead of four. polars runs one worker thread per CPU, and pages a
stage freed in one arena serve only the threads of that arena: with fewer arenas the
next stage reuses more of them (validate to receivables of a county day in one
process: peak 0.93-0.96 -> 0.89 GiB, and less system time). ``dirty_decay_ms:0``
(every free returned at once) lowers the peak further but doubles the system time of
a county day's ingest (2.3 -> 4.7 s) in page faults and ``madvise`` calls.

Python objects and numpy's arrays come from the C library's ``malloc`` instead. glibc
keeps what they freed in its heaps (a large array freed raises the size from which it
maps arrays of their own, so the next ones of that size come from the heap), and
hands it back only when asked: :func:`trim` asks, after each stage (a county day held
~180 MB of freed heap after loss, under the anomalies stage's peak).

The variable is the process's: a deployment that sets ``_RJEM_MALLOC_CONF`` itself
keeps its options (they come after these, and jemalloc takes the last of each). When
polars is already imported (a program that imported polars before meterlake) it is too
late, and nothing is changed.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable

#: the variable polars' jemalloc reads its options from (polars prepends its defaults)
VARIABLE = "_RJEM_MALLOC_CONF"
#: how long a freed page stays dirty before the background thread returns it
DIRTY_DECAY_MS = 200


def cpus() -> int:
    """The CPUs this process may run on (its affinity, else the machine's count)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # no sched_getaffinity (macOS)
        return os.cpu_count() or 1


def options(n_cpus: int | None = None) -> str:
    """The options meterlake gives polars' jemalloc (``n_cpus``: default :func:`cpus`)."""
    return f"background_thread:true,dirty_decay_ms:{DIRTY_DECAY_MS},muzzy_decay_ms:0,narenas:{n_cpus or cpus()}"


def configure() -> bool:
    """Put :func:`options` in ``_RJEM_MALLOC_CONF`` ahead of the process's own; return
    whether polars will load with them (False when polars is already imported)."""
    ours = options()
    if "polars" in sys.modules:
        return ours in os.environ.get(VARIABLE, "")
    own = os.environ.get(VARIABLE, "")
    if ours not in own:
        os.environ[VARIABLE] = ours + ("," + own if own else "")
    return True


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    try:
        trim_ = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim_.argtypes, trim_.restype = [ctypes.c_size_t], ctypes.c_int
    return trim_


def trim() -> bool:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim(0)``, a
    few milliseconds); whether the C library could. Polars' and pyarrow's allocators
    have their own ways (above, and ``release_unused`` after a write)."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True
