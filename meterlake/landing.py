"""Reading the landing zone safely: only regular files, only under the landing root.

Upstream systems write into the landing zone; the pipeline only reads it. What it
reads must be a landing file and nothing else:

* a symbolic link is never followed (it could point at any file of the machine, which
  would then be copied into the quarantine, the run record and the reporting DB);
* a FIFO, socket or device is never opened (reading a FIFO blocks forever);
* a dataset folder that resolves outside the landing root is not walked;
* a file whose name is not ``.csv``/``.csv.gz`` is listed and skipped, never parsed.

Each such entry is a :class:`Refused` with a one-line reason, reported by the caller.
Files are opened with ``O_NOFOLLOW`` and checked again on the open descriptor, so a
file swapped for a link between listing and reading is refused too. A large file is
read in blocks from its open descriptor (hashed, then parsed), never held whole; a file
written to while it is read is refused for this run.
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SUFFIXES = (".csv", ".csv.gz")


@dataclass(frozen=True)
class Candidate:
    """A regular landing file with a landing-file name."""

    path: Path
    rel: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Refused:
    """A landing entry that is not read, and why (one line)."""

    rel: str
    status: str  # "refused" (not a regular file, or outside the root) | "skipped" (another name)
    reason: str
    size: int = 0
    mtime_ns: int = 0


class LandingReadError(OSError):
    """A landing file could not be read as a regular file under the landing root."""


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def scan_dataset(landing: Path, dataset: str) -> tuple[list[Candidate], list[Refused]]:
    """The landing files of ``dataset`` to read, and the entries refused or skipped.

    Hidden entries (a leading dot: upstream temp files) are ignored silently.
    """
    root = Path(landing)
    folder = root / dataset
    try:
        st = folder.lstat()
    except FileNotFoundError:
        return [], []
    if not stat.S_ISDIR(st.st_mode):
        return [], [Refused(dataset, "refused", f"dataset folder is {_kind(st.st_mode)}; expected a directory")]
    real_root = root.resolve()
    if not folder.resolve().is_relative_to(real_root):
        return [], [Refused(dataset, "refused", f"dataset folder resolves outside the landing root {real_root}")]
    found: list[Candidate] = []
    refused: list[Refused] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        # a link to a directory is listed among dirnames but never walked: refuse it
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            sub = here / name
            mode = sub.lstat().st_mode
            if stat.S_ISLNK(mode):
                refused.append(
                    Refused(sub.relative_to(root).as_posix(), "refused", "a symbolic link: links are never followed")
                )
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (here / d).is_symlink())
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = here / name
            rel = p.relative_to(root).as_posix()
            try:
                lst = p.lstat()
            except FileNotFoundError:  # removed while listing
                continue
            if not stat.S_ISREG(lst.st_mode):
                what = _kind(lst.st_mode)
                why = "links are never followed" if stat.S_ISLNK(lst.st_mode) else "only regular files are read"
                refused.append(Refused(rel, "refused", f"{what}: {why}"))
            elif not name.endswith(SUFFIXES):
                refused.append(
                    Refused(
                        rel,
                        "skipped",
                        f"not a landing file: expected a name ending in {' or '.join(SUFFIXES)}",
                        lst.st_size,
                        lst.st_mtime_ns,
                    )
                )
            else:
                found.append(Candidate(p, rel, lst.st_size, lst.st_mtime_ns))
    return sorted(found, key=lambda c: c.rel), sorted(refused, key=lambda r: r.rel)


def open_landing_file(path: Path) -> BinaryIO:
    """A regular landing file opened for reading (binary), never through a link and never blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise LandingReadError(
            exc.errno, f"cannot open {path}: {exc.strerror} (a link or not a regular file?)"
        ) from exc
    fh = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
        fh.close()
        raise LandingReadError(0, f"{path} is not a regular file")
    return fh


def read_landing_file(path: Path) -> bytes:
    """The bytes of a regular landing file, never through a link and never blocking."""
    with open_landing_file(path) as fh:
        return fh.read()


def file_digest(fh: BinaryIO, block: int = 8 << 20) -> str:
    """SHA-256 (hex) of what an open file holds, read ``block`` bytes at a time; the file is
    left at its start again."""
    fh.seek(0)
    digest = hashlib.sha256()
    while chunk := fh.read(block):
        digest.update(chunk)
    fh.seek(0)
    return digest.hexdigest()


class DigestingReader:
    """An open landing file read through, hashed (SHA-256) as it is read: one pass instead of two.

    Each byte is hashed once, in file order, whatever the reader does (a parse that reads a
    piece, finds it is not UTF-8, seeks back to the start and reads the file whole hashes
    nothing twice); :meth:`hexdigest` hashes what was not read. The hashing runs on a second
    thread (hashlib lets go of the GIL), beside the parse; with ``threaded`` False (a small
    file: a thread costs more than its hash) as it is read. Use as a context manager.
    """

    def __init__(self, fh: BinaryIO, block: int = 8 << 20, threaded: bool = True) -> None:
        self.fh, self.block = fh, block
        self.digest = hashlib.sha256()
        self.hashed = 0  # bytes [0, hashed) are queued for the digest
        self.gap = False  # a read began past them (never done by the parser): hash the file again
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self.thread = threading.Thread(target=self._hash, name="landing-digest", daemon=True)
        if threaded:
            self.thread.start()

    def _hash(self) -> None:
        while (chunk := self.queue.get()) is not None:
            self.digest.update(chunk)

    def read(self, n: int = -1) -> bytes:
        pos = self.fh.tell()
        data = self.fh.read(n)
        end = pos + len(data)
        if pos > self.hashed:
            self.gap = True
        elif end > self.hashed:
            self._put(data[self.hashed - pos :] if pos < self.hashed else data)
            self.hashed = end
        return data

    def _put(self, chunk: bytes) -> None:
        if self.thread.is_alive():
            self.queue.put(chunk)
        else:
            self.digest.update(chunk)

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        return self.fh.seek(pos, whence)

    def tell(self) -> int:
        return self.fh.tell()

    def hexdigest(self) -> str:
        """The SHA-256 of the whole file (what was not read is read and hashed now)."""
        if not self.gap:
            self.fh.seek(self.hashed)
            while chunk := self.fh.read(self.block):
                self._put(chunk)
                self.hashed += len(chunk)
        self.close()
        return file_digest(self.fh) if self.gap else self.digest.hexdigest()

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()

    def __enter__(self) -> DigestingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unchanged(fh: BinaryIO, before: os.stat_result, path: Path) -> None:
    """Raise :class:`LandingReadError` when an open landing file was written to since ``before``
    (its size or modification time moved): what was read of it is not one version."""
    now = os.fstat(fh.fileno())
    if (now.st_size, now.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise LandingReadError(0, f"{path} changed while it was read; it is read again by the next run")
