"""A landing zone and a lake on object storage (S3 API: AWS S3, MinIO, Huawei OBS, Alibaba OSS).

``meterlake run --landing s3://bucket/landing --lake s3://bucket/lake`` runs on workers that
share no disk. Endpoint and credentials come from the standard variables
``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` and
``AWS_ALLOW_HTTP=true`` (a plain-http endpoint such as a MinIO on the intranet).

How a run works on a bucket
---------------------------
Each unit of work runs on a local working copy kept in a cache folder of the worker
(``METERLAKE_CACHE_DIR``, default ``~/.cache/meterlake``) and is committed back object by
object:

1. Take the unit's lock: an object ``<unit>/_meta/locks/lake.lock`` created only if absent
   (a conditional PUT, ``If-None-Match: *``); a second writer of the unit finds it and
   waits or fails with one line naming the holder. A lock older than
   ``METERLAKE_S3_LOCK_TTL_S`` (default 6 hours: longer than any task may run) is left by
   a dead worker and is taken over.
2. Bring the unit's prefix down: only the objects whose ETag changed since the cache last
   saw them are fetched; files the bucket no longer holds are removed from the copy.
3. Run the stages on the copy, exactly as on a local lake.
4. Commit: upload every file the run wrote, data first, then the ``_meta`` files with the
   manifest last, then delete the objects the run removed (e.g. the ingest plan), in the
   order the local pipeline writes them, so a worker killed midway leaves a state the next
   run completes; then release the lock.

Every partition is one object with a fixed name, and one PUT of an object is atomic: a
reader sees the previous object or the new one, never part of one. So a partition is
replaced atomically without a rename, as ``os.replace`` does on a local disk. Readers take
the lake straight from the bucket, e.g.
``pl.scan_parquet("s3://bucket/lake/org_id=*/marts/meter_daily/**/*.parquet", hive_partitioning=True)``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the URL schemes that name a bucket
SCHEMES = ("s3://",)
#: a lock object older than this (seconds) was left by a dead worker
LOCK_TTL_S = 6 * 3600.0
POLL_S = 0.5


def is_url(value: object) -> bool:
    """Whether ``value`` names a bucket prefix rather than a local folder.

    >>> is_url("s3://bucket/lake"), is_url("/srv/lake")
    (True, False)
    """
    return str(value).startswith(SCHEMES)


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``bucket``, ``a/b``).

    >>> split_url("s3://meters/prov/lake/")
    ('meters', 'prov/lake')
    """
    rest = url.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"{url}: expected s3://bucket/prefix")
    return bucket, prefix.strip("/")


def cache_dir() -> Path:
    return Path(os.environ.get("METERLAKE_CACHE_DIR") or Path.home() / ".cache" / "meterlake")


def _store(bucket: str) -> Any:
    try:
        from obstore.store import S3Store
    except ImportError as exc:  # pragma: no cover - the [s3] extra is not installed
        raise RuntimeError("object storage needs the s3 extra: pip install 'meterlake[s3]'") from exc
    # endpoint, credentials, region and AWS_ALLOW_HTTP come from the environment
    return S3Store(bucket)


class LockBusy(RuntimeError):
    """Another writer holds the lock object; the message is one line naming it."""


@dataclass
class Prefix:
    """One prefix of a bucket and its working copy on this worker."""

    url: str

    def __post_init__(self) -> None:
        self.bucket, self.prefix = split_url(self.url)
        self.store = _store(self.bucket)
        self.local = cache_dir() / self.bucket / self.prefix
        self._index_path = cache_dir() / ".index" / self.bucket / (self.prefix.replace("/", "__") or "_") / "index.json"

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def child(self, rel: str) -> Prefix:
        return Prefix(f"s3://{self.bucket}/{self.key(rel)}")

    # listing -------------------------------------------------------------------
    def listing(self, under: str = "") -> dict[str, dict[str, Any]]:
        """rel path -> object meta (size, e_tag, last_modified) under ``under``."""
        import obstore

        base = self.key(under) if under else self.prefix
        out: dict[str, dict[str, Any]] = {}
        for batch in obstore.list(self.store, base + "/" if base else None):
            for meta in batch:
                path = str(meta["path"])
                rel = path[len(self.prefix) + 1 :] if self.prefix else path
                out[rel] = dict(meta)
        return out

    # the working copy ----------------------------------------------------------
    def _index(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._index_path.read_text(encoding="utf-8"))
            return data
        except (OSError, ValueError):
            return {}

    def _save_index(self, index: dict[str, Any]) -> None:
        self._index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index), encoding="utf-8")
        os.replace(tmp, self._index_path)

    def pull(self, under: str = "", keep: Callable[[str], bool] | None = None) -> int:
        """Bring the objects under ``under`` (those ``keep`` accepts) down to the working copy.

        Only objects whose ETag changed since this cache saw them are fetched; each local
        file gets the object's modification time; files the bucket no longer holds are
        removed from the copy. Returns how many objects were fetched.
        """
        import obstore

        index = self._index()
        remote = self.listing(under)
        if keep is not None:
            remote = {r: m for r, m in remote.items() if keep(r)}
        fetched = 0
        for rel, meta in remote.items():
            path = self.local / rel
            tag = f"{meta.get('e_tag') or ''}:{meta['size']}"
            held = index.get(rel)
            if held and held["tag"] == tag and path.is_file() and list(_stat(path)) == held["stat"]:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.pull")
            tmp.write_bytes(bytes(obstore.get(self.store, self.key(rel)).bytes()))
            stamp = _ns(meta["last_modified"])
            os.utime(tmp, ns=(stamp, stamp))
            os.replace(tmp, path)
            index[rel] = {"tag": tag, "stat": list(_stat(path))}
            fetched += 1
        for rel in self._local_files(under, keep):
            if rel not in remote:  # another worker's run deleted it
                (self.local / rel).unlink()
                index.pop(rel, None)
        for rel in [r for r in index if _under(r, under) and (keep is None or keep(r)) and r not in remote]:
            index.pop(rel, None)
        self._save_index(index)
        return fetched

    def _local_files(self, under: str, keep: Callable[[str], bool] | None) -> list[str]:
        base = self.local / under if under else self.local
        if not base.is_dir():
            return []
        out = []
        for path in base.rglob("*"):
            rel = path.relative_to(self.local).as_posix()
            if path.is_file() and not _local_only(rel) and (keep is None or keep(rel)):
                out.append(rel)
        return out

    def push(self, under: str = "", keep: Callable[[str], bool] | None = None) -> dict[str, int]:
        """Commit what the run changed under ``under``: uploads, then deletions.

        A file is changed when its size or modification time differs from the copy last
        pulled or pushed. Data objects go first, then ``_meta`` objects with the manifest
        last; the objects the run removed are deleted last (see the module's docstring).
        """
        import obstore

        index = self._index()
        now = {rel: list(_stat(self.local / rel)) for rel in self._local_files(under, keep)}
        changed = sorted((r for r, st in now.items() if (index.get(r) or {}).get("stat") != st), key=_commit_order)
        for rel in changed:
            obstore.put(self.store, self.key(rel), (self.local / rel).read_bytes())
            meta = obstore.head(self.store, self.key(rel))
            stamp = _ns(meta["last_modified"])
            os.utime(self.local / rel, ns=(stamp, stamp))
            index[rel] = {"tag": f"{meta.get('e_tag') or ''}:{meta['size']}", "stat": list(_stat(self.local / rel))}
        gone = sorted(r for r in index if _under(r, under) and (keep is None or keep(r)) and r not in now)
        for rel in gone:
            obstore.delete(self.store, self.key(rel))
            index.pop(rel, None)
        self._save_index(index)
        return {"uploaded": len(changed), "deleted": len(gone)}

    # the lock ------------------------------------------------------------------
    @contextmanager
    def lock(self, rel: str, run_id: str, wait_s: float = 0.0) -> Iterator[None]:
        """Hold the lock object ``rel`` (created only if absent) for the ``with`` block."""
        import obstore
        from obstore.exceptions import AlreadyExistsError, NotFoundError

        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": run_id,
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        key = self.key(rel)
        ttl = float(os.environ.get("METERLAKE_S3_LOCK_TTL_S") or LOCK_TTL_S)
        deadline = time.monotonic() + max(wait_s, 0.0)
        while True:
            try:
                obstore.put(self.store, key, json.dumps(info).encode(), mode="create")
                break
            except AlreadyExistsError:
                try:
                    meta = obstore.head(self.store, key)
                    holder = json.loads(bytes(obstore.get(self.store, key).bytes()) or b"{}")
                except (NotFoundError, ValueError):
                    continue  # released meanwhile: try again
                age = (dt.datetime.now(dt.UTC) - meta["last_modified"]).total_seconds()
                if age > ttl:  # its holder died without releasing it
                    obstore.delete(self.store, key)
                    continue
                if time.monotonic() >= deadline:
                    waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
                    raise LockBusy(
                        f"the lake {self.url} is locked by pid {holder.get('pid')} on {holder.get('host')}, "
                        f"run {holder.get('run_id')}, since {holder.get('since')}{waited}; retry when it "
                        "finishes (or set METERLAKE_LOCK_WAIT_S to wait)"
                    ) from None
                time.sleep(POLL_S)
        try:
            yield
        finally:
            obstore.delete(self.store, key)


def _under(rel: str, under: str) -> bool:
    return not under or rel == under or rel.startswith(under.rstrip("/") + "/")


def _ns(stamp: dt.datetime) -> int:
    return int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1000


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _local_only(rel: str) -> bool:
    """Files of the working copy that never go to the bucket: staging, local locks and logs."""
    return rel.startswith(".staging/") or "/.staging/" in rel or "/_meta/locks/" in f"/{rel}" or rel.endswith(".pull")


def _commit_order(rel: str) -> tuple[int, str]:
    """Data before metadata, the manifests last (a partial commit is one a rerun completes)."""
    if "_meta/" not in rel:
        return 0, rel
    name = rel.rsplit("/", 1)[-1]
    if name in ("manifest.parquet",):
        return 3, rel
    if name == "pending_dates.json":
        return 2, rel
    return 1, rel
