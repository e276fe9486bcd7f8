"""Hashing a landing file while it is parsed (meterlake/landing.py: DigestingReader)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from meterlake.landing import DigestingReader, file_digest


def test_the_digest_of_a_file_read_in_pieces_and_again_is_its_sha256(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    with open(path, "rb") as fh, DigestingReader(fh, block=1000) as reader:
        assert reader.read(300) == data[:300]
        assert reader.read(5000) == data[300:5300]
        reader.seek(0)  # as the parser does for a file it decodes whole: nothing hashed twice
        assert reader.read() == data
        assert reader.hexdigest() == hashlib.sha256(data).hexdigest()


def test_what_the_reader_did_not_read_is_hashed_too(tmp_path: Path) -> None:
    data = b"meter_id,freeze_date\n" * 5000
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    with open(path, "rb") as fh, DigestingReader(fh, block=4096) as reader:
        reader.read(10)
        assert reader.hexdigest() == hashlib.sha256(data).hexdigest()
    with open(path, "rb") as fh, DigestingReader(fh) as reader:  # a read past what was hashed
        reader.seek(100)
        reader.read(10)
        assert reader.hexdigest() == file_digest(fh) == hashlib.sha256(data).hexdigest()
    with open(path, "rb") as fh, DigestingReader(fh) as reader:  # nothing read at all
        assert reader.hexdigest() == hashlib.sha256(data).hexdigest()


def test_without_a_thread_the_digest_is_the_same(tmp_path: Path) -> None:
    data = b"0001,2026-01-01,10\n" * 3000
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    with open(path, "rb") as fh, DigestingReader(fh, block=1000, threaded=False) as reader:
        reader.read(700)
        reader.seek(0)
        reader.read(2000)
        assert not reader.thread.is_alive()
        assert reader.hexdigest() == hashlib.sha256(data).hexdigest()
