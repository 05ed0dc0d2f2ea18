"""Pure helpers of the P4Runtime server: bytestrings, entry decoding, the error trailer, pacing."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import text_format
from google.rpc import code_pb2, status_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from system.switch.p4rt.codec import P4InfoIndex, decode_entry, encode_entry, to_bytes, to_int
from system.switch.p4rt.errors import P4RTError, parse_details, write_failure
from system.switch.p4rt.insertion import InsertionPacer
from system.switch.profiles import InsertionModel

P4INFO = """
tables {
  preamble { id: 33554433 name: "Ing.t" alias: "t" }
  match_fields { id: 1 name: "dst" bitwidth: 32 match_type: LPM }
  match_fields { id: 2 name: "port" bitwidth: 9 match_type: EXACT }
  action_refs { id: 16777217 }
  action_refs { id: 16777218 scope: DEFAULT_ONLY }
  const_default_action_id: 16777218
  size: 16
}
actions { preamble { id: 16777217 name: "Ing.fwd" alias: "fwd" }
          params { id: 1 name: "mac" bitwidth: 48 } }
actions { preamble { id: 16777218 name: "Ing.drop" alias: "drop" } }
"""
IDX = P4InfoIndex(text_format.Parse(P4INFO, p4info_pb2.P4Info()))
T = IDX.table_by_name("t")
FWD = IDX.action_by_name("fwd")


def entry(dst: bytes = b"\xc6\x12\x00\x00", plen: int = 16, port: bytes = b"\x01\x05",
          action: int = 16777217, mac: bytes = b"\x02\x00\x00\x00\x00\x01") -> p4runtime_pb2.TableEntry:
    e = p4runtime_pb2.TableEntry(table_id=T.id)
    m = e.match.add(field_id=1)
    m.lpm.value, m.lpm.prefix_len = dst, plen
    e.match.add(field_id=2).exact.value = port
    e.action.action.action_id = action
    e.action.action.params.add(param_id=1, value=mac)
    return e


def test_canonical_bytes() -> None:
    assert to_bytes(0) == b"\x00"
    assert to_bytes(0x105, 9) == b"\x01\x05"
    assert to_bytes(5, 48) == b"\x05"
    with pytest.raises(ValueError):
        to_bytes(512, 9)
    assert to_int(b"\x00\x00\x05", 9, "x") == 5          # zero padding is accepted


def test_decode_and_encode_round_trip() -> None:
    d = decode_entry(IDX, entry(), with_action=True)
    assert d.key == {"dst": (0xC6120000, 16), "port": 0x105}
    assert d.action is FWD and d.params == {"mac": 0x020000000001}
    out = encode_entry(T, d.key, d.action, d.params)
    assert out.match[0].lpm.value == b"\xc6\x12\x00\x00" and out.match[0].lpm.prefix_len == 16
    assert out.match[1].exact.value == b"\x01\x05"
    assert out.action.action.params[0].value == b"\x02\x00\x00\x00\x00\x01"


@pytest.mark.parametrize(("bad", "needle"), [
    (dict(port=b"\x02\x00"), "does not fit in 9 bits"),
    (dict(plen=33), "prefix length 33"),
    (dict(plen=0), "prefix length 0"),
    (dict(plen=8), "beyond the /8 prefix"),
    (dict(action=16777218), "not an entry action"),
    (dict(action=99), "unknown action id"),
    (dict(mac=b"\x01" * 7), "does not fit in 48 bits"),
    (dict(port=b""), "empty bytestring"),
])
def test_decode_refuses_with_invalid_argument(bad: dict, needle: str) -> None:
    with pytest.raises(P4RTError) as e:
        decode_entry(IDX, entry(**bad), with_action=True)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in e.value.message


def test_missing_exact_field_and_unknown_table() -> None:
    e = entry()
    del e.match[1]
    with pytest.raises(P4RTError, match="exact match field port is missing"):
        decode_entry(IDX, e, with_action=True)
    e = entry()
    e.table_id = 7
    with pytest.raises(P4RTError, match="unknown table id"):
        decode_entry(IDX, e, with_action=True)


def test_write_failure_single_update_uses_its_own_code_and_no_ok_detail() -> None:
    code, _, blob = write_failure([P4RTError(grpc.StatusCode.ALREADY_EXISTS, "dup")])
    assert code == grpc.StatusCode.ALREADY_EXISTS
    st = status_pb2.Status.FromString(blob)
    assert st.code == code_pb2.ALREADY_EXISTS and len(st.details) == 1
    [d] = parse_details([("grpc-status-details-bin", blob)])
    assert d.canonical_code == code_pb2.ALREADY_EXISTS and d.message == "dup"


def test_write_failure_batch_is_unknown_with_one_detail_per_update() -> None:
    code, _, blob = write_failure([None, P4RTError(grpc.StatusCode.NOT_FOUND, "gone"), None])
    assert code == grpc.StatusCode.UNKNOWN
    details = parse_details([("other", b""), ("grpc-status-details-bin", blob)])
    assert [d.canonical_code for d in details] == [code_pb2.OK, code_pb2.NOT_FOUND, code_pb2.OK]
    assert details[1].message == "gone"


def test_pacer_fixed_latency_and_token_bucket() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    p = InsertionPacer(InsertionModel(rate=1000.0, burst=10, write_latency_us=100), clock=lambda: now[0],
                       sleep=sleep)
    assert p.pace(10) == pytest.approx(100e-6)              # the burst is free, the latency is not
    assert p.pace(5) == pytest.approx(100e-6 + 0.005 - 100e-6 * 1)  # 5 tokens at 1000/s, minus refill
    now[0] += 1.0                                           # idle: the bucket refills to its burst only
    assert p.pace(30) == pytest.approx(100e-6 + 0.020)      # 20 beyond the burst
    assert p.pace(0) == 0.0
    unpaced = InsertionPacer(InsertionModel())
    assert unpaced.pace(1000) == 0.0


def test_pacer_counts_the_apply_time_into_the_modelled_time() -> None:
    """The server applies a Write's updates, then sleeps only what is left of the model's time for
    it: a target faster than the model runs at the model's rate, not at the sum of both."""
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    p = InsertionPacer(InsertionModel(rate=1000.0, burst=1, write_latency_us=100), clock=lambda: now[0],
                       sleep=sleep)
    total = 0
    for _ in range(100):                                  # 100 Writes of 10 updates, 3 ms to apply each
        start = p.now()
        budget = p.delay_for(10)
        now[0] += 0.003
        p.finish(start + budget)
        total += 10
    assert total / now[0] == pytest.approx(1000.0, rel=0.02)     # the profile's rate, not 1000 * 10/13
    assert p.finish(now[0] - 1.0) == 0.0                   # a deadline in the past: no sleep
    slow = InsertionPacer(InsertionModel(rate=1000.0, burst=1, write_latency_us=0), clock=lambda: now[0],
                          sleep=sleep)
    start, n = now[0], len(slept)
    budget = slow.delay_for(2)                            # 2 ms in the model; the target takes 5 ms
    now[0] += 0.005
    assert slow.finish(start + budget) == 0.0 and len(slept) == n
