"""Card numbers: HMAC-SHA256 tokens under a key that is created whole and private."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from meterlake.settings import Settings
from meterlake.stages import StageContext
from meterlake.stages.ingest import card_token, pii_key, tokenise_cards


def ctx(tmp_path: Path, key: str | None = None) -> StageContext:
    return StageContext(
        settings=Settings(landing=tmp_path / "landing", lake=tmp_path / "lake", pii_key=key), run_id="t"
    )


def test_token_is_rfc_4231_hmac_sha256() -> None:
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    # HMAC-SHA256 = 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843
    assert card_token("what do ya want for nothing?", "Jefe") == "5bdcc146bf60754e6a042426089575c7"


def test_tokenise_keeps_last4_and_token_only() -> None:
    rows = pl.DataFrame(
        {"txn_id": ["T1", "T2", "T3", "T4"], "card_no": ["6222000011112222", None, "", "6222000011112222"]}
    )
    got = tokenise_cards(rows, "Jefe")
    token = card_token("6222000011112222", "Jefe")
    want = pl.DataFrame(
        {
            "txn_id": ["T1", "T2", "T3", "T4"],
            "card_last4": ["2222", None, None, "2222"],
            "card_token": [token, None, None, token],
        }
    )
    assert_frame_equal(got, want)


def test_a_different_key_gives_different_tokens() -> None:
    assert card_token("6222000011112222", "k1") != card_token("6222000011112222", "k2")


def test_the_environment_key_wins(tmp_path: Path) -> None:
    assert pii_key(ctx(tmp_path, key="from-env")) == "from-env"
    assert not (tmp_path / "lake" / "_meta" / "pii.key").exists()


def test_key_file_is_private_and_created_once(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask the key is owner-only
    try:
        key = pii_key(ctx(tmp_path))
    finally:
        os.umask(old)
    path = tmp_path / "lake" / "_meta" / "pii.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 64 and int(key, 16) >= 0
    assert pii_key(ctx(tmp_path)) == key  # reused, not replaced
    assert sorted(p.name for p in path.parent.iterdir()) == ["pii.key"]  # no temporary file left


def test_racing_creators_agree_on_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: pii_key(ctx(tmp_path)), range(32)))
    assert len(keys) == 1


@pytest.mark.parametrize("existing", ["abc123\n", "  k  "])
def test_an_existing_key_file_is_read_stripped(tmp_path: Path, existing: str) -> None:
    path = tmp_path / "lake" / "_meta" / "pii.key"
    path.parent.mkdir(parents=True)
    path.write_text(existing, encoding="utf-8")
    assert pii_key(ctx(tmp_path)) == existing.strip()
