"""harness/p4rtstats.py's merge of the control plane's retired counters (no switch needed; the Reads
themselves are checked end to end in tests/test_tofino_standin.py), and that the analysis takes the
offloaded share from such counters as it does from the emulated switch's maps."""

from __future__ import annotations

from analysis import switchstats
from harness.p4rtstats import add_retired


def counters(offload: int, bbi: int, backends: int) -> dict:
    def row(hit: int, entries: int = 1) -> dict:
        return {"entries": entries, "hit_packets": hit // 1000, "hit_bytes": hit, "miss_packets": 0,
                "miss_bytes": 0, "capacity": 1024}
    return {"time": 1.0, "source": "p4runtime",
            "tables": {"offload": row(offload), "backend_by_index": row(bbi, 2), "backends": row(backends, 2)}}


def test_retired_counters_are_added_to_the_hits() -> None:
    c = add_retired(counters(5_000, 100, 9_000), {"retired_counters": {"offload": {"entries": 3, "packets": 7,
                                                                                  "bytes": 70_000},
                                                                      "gone": {"entries": 1, "bytes": 5}}})
    assert c["tables"]["offload"]["hit_bytes"] == 75_000 and c["tables"]["offload"]["hit_packets"] == 12
    assert c["tables"]["offload"]["entries"] == 1                        # live entries only
    assert c["tables"]["backends"]["hit_bytes"] == 9_000                 # nothing retired there
    assert "gone" not in c["tables"] and c["retired"]["offload"]["entries"] == 3
    assert add_retired(counters(1, 1, 1), None)["tables"]["offload"]["hit_bytes"] == 1   # no stats: unchanged


def test_offloaded_share_over_a_window_counts_the_deleted_entries() -> None:
    # start: one live entry with 1,000 bytes; end: it and two more were deleted (their counters
    # retired: 81,000 bytes), none live. Client ACKs through backend_by_index: 500 bytes.
    start = add_retired(counters(1_000, 100, 2_000), {"retired_counters": {}})
    end = counters(0, 600, 102_000)
    end["tables"]["offload"]["entries"] = 0
    end = add_retired(end, {"retired_counters": {"offload": {"entries": 3, "packets": 60, "bytes": 81_000}}})
    offloaded, total = switchstats.offload_bytes("miresga", start, end)
    assert (offloaded, total) == (81_000 - 1_000 - 500, 100_000)


def test_a_switch_without_default_entry_counters_still_gives_the_share() -> None:
    start, end = counters(1_000, 100, 2_000), counters(51_000, 600, 102_000)
    for c in (start, end):
        for row in c["tables"].values():
            del row["miss_packets"], row["miss_bytes"]
    assert switchstats.offload_bytes("miresga", start, end) == (50_000 - 500, 100_000)


def test_an_entry_deleted_during_the_read_counts_once() -> None:
    # The live read saw entry k1 (40,000 bytes then) and k2; k1 was deleted before the control plane's
    # second reply, which retired it with 41,000 bytes: its live 40,000 come out, the retired 41,000 stay.
    c = counters(40_000 + 7_000, 100, 9_000)
    c["live"] = {"offload": {"k1": (40, 40_000), "k2": (7, 7_000)}}
    cp = {"retired_counters": {"offload": {"entries": 5, "packets": 90, "bytes": 141_000}},
          "retired_entries": [[4, "offload", "k0", 50, 100_000], [5, "offload", "k1", 41, 41_000]]}
    add_retired(c, cp)
    assert c["tables"]["offload"]["hit_bytes"] == 7_000 + 141_000
    assert c["tables"]["offload"]["hit_packets"] == 7 + 90 and c["deleted_while_read"] == 1
    assert "live" not in c and "retired_entries" not in cp        # nothing per-entry is kept
