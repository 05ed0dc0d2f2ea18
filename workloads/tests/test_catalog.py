"""Object content: deterministic, exact size, distinct per object and per block, fast."""

from __future__ import annotations

import hashlib

import pytest

from workloads.catalog import BLOCK, object_bytes, object_range, object_sha256, write_catalog


def test_deterministic_and_exact_size() -> None:
    for size in (0, 1, 1023, 1024, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17):
        a = object_bytes("obj", size)
        assert len(a) == size
        assert a == object_bytes("obj", size)


def test_distinct_per_name_and_size() -> None:
    assert object_bytes("1k", 1024) != object_bytes("1k-b", 1024)
    # A shorter object is not a prefix of a longer one of the same name (truncation is visible).
    assert not object_bytes("x", 2 * BLOCK).startswith(object_bytes("x", BLOCK))


def test_every_block_differs() -> None:
    data = object_bytes("10m", 10 * 1024 * 1024)
    blocks = [data[i:i + BLOCK] for i in range(0, len(data), BLOCK)]
    assert len(blocks) == 160
    assert len(set(blocks)) == 160
    # Not even a 4 KiB window repeats at the same position of two blocks (sampled checks rely on it).
    windows = {b[1000:1000 + 4096] for b in blocks}
    assert len(windows) == 160


def test_range_matches_slices() -> None:
    size = 5 * BLOCK + 123
    data = object_bytes("r", size)
    for start, end in ((0, 0), (0, 10), (BLOCK - 5, BLOCK + 5), (2 * BLOCK, 4 * BLOCK + 1), (size - 7, size)):
        assert object_range("r", size, start, end) == data[start:end]
    with pytest.raises(ValueError, match="not inside"):
        object_range("r", size, 0, size + 1)


def test_sha256_and_written_files(tmp_path) -> None:
    catalog = {"1k": 1024, "64k": 64 * 1024, "odd": 100_003}
    digests = write_catalog(tmp_path, catalog)
    for name, size in catalog.items():
        on_disk = (tmp_path / name).read_bytes()
        assert on_disk == object_bytes(name, size)
        assert digests[name] == hashlib.sha256(on_disk).hexdigest() == object_sha256(name, size)
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(catalog)  # no temporary files left


def test_write_catalog_rejects_path_names(tmp_path) -> None:
    with pytest.raises(ValueError, match="cannot be a file name"):
        write_catalog(tmp_path, {"../x": 10})


def test_ten_megabytes_agree_with_their_ranges() -> None:
    """The whole 10 MB object is its blocks in order (speed is not asserted here: a test may run on a
    busy machine; `python -m harness.bench.locust_ceiling` shows the generator's real costs)."""
    size = 10 * 1024 * 1024
    data = object_bytes("10m", size)
    assert len(data) == size
    for start, end in [(0, 1), (BLOCK - 3, BLOCK + 3), (size // 2, size // 2 + 2 * BLOCK + 5), (size - 7, size)]:
        assert data[start:end] == object_range("10m", size, start, end), (start, end)
