"""The Tofino SYN cookie's HalfSipHash-2-4 schedule (p4src/include/halfsiphash.p4), as a Python MODEL.

No Tofino and no Tofino model runs here, so the P4 is not executed: this file holds a model of the
P4's pass/stage schedule (the same 32-bit operations, in the same order, per pass: the SYN's ingress
pass, SIP_PASSES egress passes of 2 SipRounds, the last ingress pass), checks it bit for bit
against the reference system/switch/cookie.py, and reads the schedule back out of the P4 source
(constants, each SipRound step's statements, the order of a pass, the ingress initialisation and
the last pass) so that the model cannot drift from the program the compiler accepts.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from system.switch import cookie

P4SRC = Path(__file__).resolve().parents[1] / "p4src"
HALFSIPHASH = (P4SRC / "include" / "halfsiphash.p4").read_text()
SYNACK = (P4SRC / "include" / "synack.p4").read_text()
M32 = 0xFFFFFFFF

# --- the model ----------------------------------------------------------------------------------
# Constants of halfsiphash.p4 (checked against the source below).
SIP_PASSES = 7
SIP_FINAL_PASS = 5
SIP_LENGTH_BLOCK = 0x10000000
SIP_C0 = 0x6C796765
SIP_C1 = 0x74656462

# One SipRound: 4 steps (one MAU stage each), the statements of actions sip_step_1..4 in order.
SIPROUND_STEPS = (
    ("v0 = v0 + v1", "v2 = v2 + v3", "v1 = v1[26:0] ++ v1[31:27]", "v3 = v3[23:0] ++ v3[31:24]"),
    ("v1 = v1 ^ v0", "v3 = v3 ^ v2", "v0 = v0[15:0] ++ v0[31:16]"),
    ("v0 = v0 + v3", "v2 = v2 + v1", "v1 = v1[18:0] ++ v1[31:19]", "v3 = v3[24:0] ++ v3[31:25]"),
    ("v3 = v3 ^ v0", "v1 = v1 ^ v2", "v2 = v2[15:0] ++ v2[31:16]"),
)
# One egress pass (control SipPass): (condition on pass or None, action statements).
PASS_ACTIONS = {
    "sip_init": ("v2 = v2 ^ SIP_C0", "v3 = v3 ^ SIP_C1"),
    "sip_absorb": ("v3 = v3 ^ w0",),
    "sip_finalise": ("v2 = v2 ^ 0xff",),
    "sip_close": ("v0 = v0 ^ w0", "w0 = w1", "w1 = w2", "w2 = w3", "w3 = w4", "w4 = 0",
                  "pass = pass + 1"),
}
PASS_ORDER = (("0", "sip_init"), (None, "sip_absorb"), ("SIP_FINAL_PASS", "sip_finalise"),
              (None, "round_1"), (None, "round_2"), (None, "sip_close"))
CONSTS = {"SIP_C0": SIP_C0, "SIP_C1": SIP_C1, "SIP_FINAL_PASS": SIP_FINAL_PASS}


def _operand(text: str, st: dict[str, int]) -> tuple[int, int]:
    """(value, width) of `name`, `name[hi:lo]` or a number/constant."""
    m = re.fullmatch(r"(\w+)\[(\d+):(\d+)\]", text)
    if m:
        hi, lo = int(m.group(2)), int(m.group(3))
        return (st[m.group(1)] >> lo) & ((1 << (hi - lo + 1)) - 1), hi - lo + 1
    if text in st:
        return st[text], 32
    return (CONSTS[text] if text in CONSTS else int(text, 0)), 32


def execute(statement: str, st: dict[str, int]) -> None:
    """Run one P4 statement of the forms the schedule uses on the state dict (32-bit words)."""
    dst, expr = (s.strip() for s in statement.split("=", 1))
    if "++" in expr:
        value = 0
        for part in expr.split("++"):
            v, w = _operand(part.strip(), st)
            value = value << w | v
    else:
        m = re.fullmatch(r"(\S+)\s*([+^&|])\s*(\S+)", expr)
        if m:
            a, _ = _operand(m.group(1), st)
            b, _ = _operand(m.group(3), st)
            value = {"+": a + b, "^": a ^ b, "&": a & b, "|": a | b}[m.group(2)]
        else:
            value, _ = _operand(expr, st)
    st[dst] = value & M32


def run_action(statements: tuple[str, ...], st: dict[str, int]) -> None:
    for s in statements:
        execute(s, st)


def ingress_syn(key: int, client_ip: int, client_port: int, vip: int, vip_port: int, slot: int,
                low7: int) -> dict[str, int]:
    """The SYN's ingress pass (control SynAck): the state header as it leaves for egress pass 0.
    w3 and low8 are the identity-hash concatenations of synack.p4 (first field most significant)."""
    k0, k1 = key & M32, key >> 32
    return {"v0": k0, "v1": k1, "v2": k0, "v3": k1,
            "w0": client_ip, "w1": vip, "w2": client_port << 16 | vip_port,
            "w3": (slot & 0xFFFFFF) << 8 | 0 << 7 | low7, "w4": SIP_LENGTH_BLOCK,
            "low8": (slot & 1) << 7 | low7, "pass": 0}


def egress_pass(st: dict[str, int]) -> None:
    """One egress pass (control SipPass), in the P4's order."""
    for cond, name in PASS_ORDER:
        if cond is not None and st["pass"] != _operand(cond, st)[0]:
            continue
        if name.startswith("round_"):
            for step in SIPROUND_STEPS:
                run_action(step, st)
        else:
            run_action(PASS_ACTIONS[name], st)


def cookie_of(key: int, client_ip: int, client_port: int, vip: int, vip_port: int, slot: int,
              low7: int) -> tuple[int, int]:
    """The SYN-ACK's seq after the passes, and the number of recirculations (control SipRecirc:
    recirculate while pass < SIP_PASSES, then seq = ((v1 ^ v3) & 0xffffff00) | low8)."""
    st = ingress_syn(key, client_ip, client_port, vip, vip_port, slot, low7)
    recirculations = 0
    while True:
        egress_pass(st)              # out of SIP_RECIRC_PORT: that port's egress
        recirculations += 1          # ... and back into ingress
        if st["pass"] == SIP_PASSES:
            break
    st["seq"] = st["v1"] ^ st["v3"]
    run_action(("seq = seq & 0xffffff00", "seq = seq | low8"), st)
    return st["seq"], recirculations


# --- the model against the reference ------------------------------------------------------------
def test_model_is_the_reference_bit_for_bit():
    rng = random.Random(10)
    for _ in range(3000):
        key = rng.getrandbits(64) or 1
        ip, vip = rng.getrandbits(32), rng.getrandbits(32)
        port, vport, slot, low7 = rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(7)
        seq, recirc = cookie_of(key, ip, port, vip, vport, slot, low7)
        assert seq == cookie.make(ip, port, vip, vport, key, slot, low7), (key, ip, port, vip, vport, slot, low7)
        assert recirc == SIP_PASSES


@pytest.mark.parametrize("key", [1, 0x0706050403020100, 0xFFFFFFFFFFFFFFFF, 1 << 63])
def test_model_on_edge_inputs(key):
    for ip, port, vip, vport, slot, low7 in [(0, 0, 0, 0, 0, 0), (M32, 0xFFFF, M32, 0xFFFF, M32, 0x7F),
                                             (0xC6120001, 40000, 0xC6120064, 80, 1, 0x6F),
                                             (0xC6120001, 40000, 0xC6120064, 80, (1 << 24) + 5, 0x0F)]:
        seq, _ = cookie_of(key, ip, port, vip, vport, slot, low7)
        assert seq == cookie.make(ip, port, vip, vport, key, slot, low7)


def test_model_round_is_the_reference_sipround_for_any_state():
    rng = random.Random(11)
    for _ in range(2000):
        v = [rng.getrandbits(32) for _ in range(4)]
        st = dict(zip(("v0", "v1", "v2", "v3"), v, strict=True))
        for step in SIPROUND_STEPS:
            run_action(step, st)
        assert (st["v0"], st["v1"], st["v2"], st["v3"]) == cookie._sipround(*v)


def test_a_changed_input_bit_changes_the_cookie():
    """The model is keyed and covers the low bits: flipping one key or low bit changes the MAC."""
    base = (0x0123456789ABCDEF, 0xC6120001, 40000, 0xC6120064, 80, 77, 0x25)
    seq, _ = cookie_of(*base)
    assert cookie_of(base[0] ^ 1 << 40, *base[1:])[0] >> 8 != seq >> 8
    assert cookie_of(*base[:6], base[6] ^ 0x10)[0] >> 8 != seq >> 8


# --- the model is the P4's schedule -------------------------------------------------------------
def _body(source: str, head: str) -> str:
    """The text between the braces that follow `head` (balanced)."""
    start = source.index(head)
    i = source.index("{", start)
    depth = 0
    for j in range(i, len(source)):
        depth += {"{": 1, "}": -1}.get(source[j], 0)
        if depth == 0:
            return source[i + 1:j]
    raise AssertionError(f"unbalanced braces after {head!r}")


def _statements(body: str) -> tuple[str, ...]:
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    return tuple(re.sub(r"\s+", " ", s.strip()).replace("sip.", "")
                 for s in body.split(";") if s.strip())


def _const(name: str) -> int:
    m = re.search(rf"const bit<\d+> {name} = (0x[0-9a-fA-F]+|\d+);", HALFSIPHASH)
    assert m, name
    return int(m.group(1), 0)


def test_constants_are_the_p4s():
    assert (_const("SIP_PASSES"), _const("SIP_FINAL_PASS"), _const("SIP_LENGTH_BLOCK"),
            _const("SIP_C0"), _const("SIP_C1")) == \
        (SIP_PASSES, SIP_FINAL_PASS, SIP_LENGTH_BLOCK, SIP_C0, SIP_C1)
    # 2 SipRounds per pass, 5 blocks of 2 compression rounds then 4 finalisation rounds = 14.
    assert SIP_PASSES * 2 == 5 * 2 + 4 and SIP_FINAL_PASS == 5


def test_siproundsteps_are_the_p4s():
    round_body = _body(HALFSIPHASH, "control SipRound(")
    for n, step in enumerate(SIPROUND_STEPS, 1):
        assert _statements(_body(round_body, f"action sip_step_{n}()")) == step
    calls = _statements(_body(round_body, "apply"))
    assert calls == tuple(f"sip_step_{n}()" for n in range(1, 5))


def test_pass_actions_and_order_are_the_p4s():
    pass_body = _body(HALFSIPHASH, "control SipPass(")
    for name, statements in PASS_ACTIONS.items():
        assert _statements(_body(pass_body, f"action {name}()")) == statements
    apply = re.sub(r"/\*.*?\*/", "", _body(pass_body, "apply"), flags=re.S)
    found = re.findall(r"if \(sip\.pass == (\w+)\) \{\s*(\w+)\(\);\s*\}|(\w+)(?:\.apply\(sip\)|\(\));", apply)
    order = tuple((cond, name) if cond else (None, plain) for cond, name, plain in found)
    assert order == PASS_ORDER
    assert len(re.findall(r"SipRound\(\) round_\d;", pass_body)) == 2


def test_ingress_initialisation_is_the_p4s():
    syn = re.sub(r"/\*.*?\*/", "", _body(SYNACK, "apply"), flags=re.S)
    want = {"v0": "ig_md.cookie_k0", "v1": "ig_md.cookie_k1", "v2": "ig_md.cookie_k0",
            "v3": "ig_md.cookie_k1", "w0": "ig_md.client_addr", "w1": "ig_md.vip_addr",
            "w2": "ig_md.client_port ++ ig_md.vip_port", "w4": "SIP_LENGTH_BLOCK", "pass": "0"}
    for field, value in want.items():
        assert re.search(rf"hdr\.sip\.{field} = {re.escape(value)};", syn), field
    assert "sip_m3();" in syn and "sip_low8();" in syn
    m3 = re.sub(r"\s+", " ", _body(SYNACK, "action sip_m3()"))
    assert "m3_concat.get({ig_md.cookie_slot[23:0], 1w0, ig_md.opt_mss_idx, ig_md.opt_sack, wscale_code})" in m3
    low8 = re.sub(r"\s+", " ", _body(SYNACK, "action sip_low8()"))
    assert "low8_concat.get({ig_md.cookie_slot[0:0], ig_md.opt_mss_idx, ig_md.opt_sack, wscale_code})" in low8
    assert "ucast_egress_port = SIP_RECIRC_PORT" in _body(SYNACK, "action build_synack()")


def test_last_pass_is_the_p4s():
    recirc = _body(HALFSIPHASH, "control SipRecirc(")
    assert _statements(_body(recirc, "action sip_output()")) == ("hdr.tcp.seq_no = hdr.v1 ^ hdr.v3",)
    assert _statements(_body(recirc, "action sip_mask()")) == ("hdr.tcp.seq_no = hdr.tcp.seq_no & 0xffffff00",)
    deliver = _statements(_body(recirc, "action sip_deliver()"))
    assert deliver[0] == "hdr.tcp.seq_no = hdr.tcp.seq_no | (bit<32>)hdr.low8"
    assert "ig_tm_md.ucast_egress_port = hdr.port" in deliver
    apply = re.sub(r"\s+", " ", _body(recirc, "apply"))
    assert "ingress_port != SIP_RECIRC_PORT" in apply
    assert re.search(r"else if \(hdr\.sip\.pass == SIP_PASSES\) \{ sip_output\(\); sip_mask\(\); "
                     r"sip_deliver\(\); \} else \{ ig_tm_md\.ucast_egress_port = SIP_RECIRC_PORT; \}", apply)


def test_egress_runs_one_pass_on_the_state_header_only():
    egress = re.sub(r"\s+", " ", _body(HALFSIPHASH, "control CookieEgress("))
    assert "if (hdr.sip.isValid()) { sip_pass.apply(hdr.sip); }" in egress
    for prog in ("miresga", "switch_only"):
        text = (P4SRC / f"{prog}.p4").read_text()
        assert "CookieEgressParser(),\n         CookieEgress(),\n         CookieEgressDeparser()" in text
        assert re.search(r"if \(hdr\.sip\.isValid\(\)\) \{\s*sip_recirc\.apply", text)
