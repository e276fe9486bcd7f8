"""Shards: the org unit (supply unit, archive ``org_id``) is the unit of work.

A sharded lake holds one complete lake per org unit, Hive-keyed by the unit::

    LAKE/org_id=<org>/clean/...        the unit's clean tables
    LAKE/org_id=<org>/marts/...        its marts: every row's org_id is the folder's key
    LAKE/org_id=<org>/_meta/...        its manifest, plan, ledgers, staged files, runs, lock
    LAKE/org_id=<org>/_meta/inbox/     landing-file parts the split left for the unit
    LAKE/_meta/split/                  the split's manifest and the meter -> unit map
    LAKE/_meta/runs/<run id>.json      the run record: which shards completed, which are missing

A daily shard is (unit, date), a monthly one (unit, month). Every stage of a shard reads
and writes only its unit's sub-lake, so shards never write the same file: their
manifests, ledgers and partitions are separate files, and each sub-lake has its own
writer lock (:mod:`meterlake.lock` under ``LAKE/org_id=<org>/_meta/locks``). Two
writers of one shard exclude each other; writers of two shards run side by side.

Landing files are shared by all units. The split (:func:`meterlake.stages.ingest.split_landing`)
parses each new landing file once and hands each unit its rows; a file holding
several units is split by unit there. Readers take the whole province with a glob over
the unit key, e.g. ``pl.scan_parquet("LAKE/org_id=*/marts/area_loss_daily/**/*.parquet",
hive_partitioning=True)``, which adds ``org_id`` (and ``date``) from the path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .transforms.recovery import DEFAULT_ORG

__all__ = ["DEFAULT_ORG", "MARKER", "SHARD_KEY", "check_org", "is_shard", "shard_root", "shards"]

#: the Hive key of a unit's sub-lake
SHARD_KEY = "org_id"
#: a sub-lake's marker, written by the split: ``{"org_id": ...}``
MARKER = "shard.json"
#: what an org_id may hold to name a folder (letters, digits, - _ .), 1-64 characters
_ORG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_org(org: str) -> str:
    """``org`` when it can name a shard's folder; ``ValueError`` with one line otherwise.

    >>> check_org("ORG01")
    'ORG01'
    """
    if not _ORG.match(org):
        raise ValueError(
            f"org_id {org!r}: expected 1-64 letters, digits, '-', '_' or '.' (it names the shard's folder)"
        )
    return org


def shard_root(lake: Path, org: str) -> Path:
    """The sub-lake of unit ``org`` under the province lake ``lake``.

    >>> shard_root(Path("/srv/lake"), "ORG01").as_posix()
    '/srv/lake/org_id=ORG01'
    """
    return Path(lake) / f"{SHARD_KEY}={check_org(org)}"


def is_shard(lake: Path) -> bool:
    """Whether ``lake`` is a unit's sub-lake (its ingest reads the inbox, not the landing zone)."""
    return (Path(lake) / "_meta" / MARKER).is_file()


def shards(lake: Path) -> list[str]:
    """The units a province lake holds, sorted."""
    root = Path(lake)
    if not root.is_dir():
        return []
    prefix = f"{SHARD_KEY}="
    out = []
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith(prefix) and is_shard(p):
            out.append(json.loads((p / "_meta" / MARKER).read_text(encoding="utf-8"))[SHARD_KEY])
    return sorted(out)
