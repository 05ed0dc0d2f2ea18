"""Pipeline switch_only: constants of the C headers and the P4 includes against tables.py, the shared
SYN-ACK parts, and the contract's names (the P4Info and the compiled object are checked for every
pipeline by test_correspondence.py)."""

from __future__ import annotations

import re
from pathlib import Path

from system.switch import cookie
from system.switch.profiles import load_profile
from system.switch.tables import MIRESGA, SWITCH_ONLY, load_p4info

BPF_DIR = Path(__file__).resolve().parents[1] / "bpf"
P4SRC = Path(__file__).resolve().parents[3] / "p4src"
DOC = Path(__file__).resolve().parents[3] / "docs" / "switch-only-datapath.md"


def _defines(path: Path) -> dict[str, int]:
    return {k: int(v, 0) for k, v in re.findall(r"#define (\w+) (0x[0-9a-fA-F]+|\d+)u?\b", path.read_text())}


def test_c_constants_match_the_spec():
    d = _defines(BPF_DIR / "switch_only_tables.h") | _defines(BPF_DIR / "synack_tables.h") \
        | _defines(BPF_DIR / "guard_tables.h")
    assert d["SWITCH_ONLY_NUM_TABLES"] == len(SWITCH_ONLY.tables)
    for t in SWITCH_ONLY.tables:
        if t.name == "route":
            continue
        assert d[f"{t.name.upper()}_TABLE_SIZE"] == t.size, t.name
        assert d[f"TABLE_{t.name.upper()}"] == t.table_id, t.name
        prefix = f"{t.name.upper()}_ACTION_"
        codes = {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}
        assert sorted(codes.values()) == sorted(a.code for a in t.actions), t.name
    assert sorted(t.table_id for t in SWITCH_ONLY.tables) == list(range(len(SWITCH_ONLY.tables)))
    assert (d["SWITCH_MSS"], d["SWITCH_WSCALE"], d["SWITCH_WINDOW"], d["NO_WSCALE"], d["MAX_WSCALE"]) == \
        (cookie.SWITCH_MSS, cookie.SWITCH_WSCALE, cookie.SWITCH_WINDOW, cookie.NO_WSCALE, cookie.MAX_WSCALE)


def test_the_syn_ack_code_is_shared_and_sack_is_off_only_for_switch_only():
    so_c, mi_c = (BPF_DIR / "switch_only.c").read_text(), (BPF_DIR / "miresga.c").read_text()
    assert re.search(r'#define SYNACK_NO_SACK\s*\n#include "miresga_synack.h"', so_c)
    assert "SYNACK_NO_SACK" not in mi_c and '#include "miresga_synack.h"' in mi_c
    synack = (BPF_DIR / "miresga_synack.h").read_text()
    assert re.search(r"#ifdef SYNACK_NO_SACK\s*\n\s*o\.sack_ok = 0;", synack)
    control = (P4SRC / "include" / "switch_only_control.p4").read_text()
    assert "SynAck(false) synack;" in control and "synack.apply(" in control
    assert "SynAck(true) synack;" in (P4SRC / "include" / "miresga_control.p4").read_text()
    # the same syn_cookie and vip/backends sizes as Miresga's
    for name in ("syn_cookie", "vip", "backends", "protected_hosts", "trusted_ports"):
        assert SWITCH_ONLY.table(name).size == MIRESGA.table(name).size


def test_p4_source_applies_every_table_and_translates_seq_ack():
    control = (P4SRC / "include" / "switch_only_control.p4").read_text()
    text = control + (P4SRC / "include" / "forwarding.p4").read_text()
    for t in SWITCH_ONLY.tables:
        assert re.search(rf"\b{t.name}\.apply\(\)", text), t.name
    assert "hdr.tcp.ack_no = hdr.tcp.ack_no + ack_delta;" in control
    assert "hdr.tcp.seq_no = hdr.tcp.seq_no + seq_delta;" in control   # the negated delta
    top = (P4SRC / "switch_only.p4").read_text()
    fields = re.search(r"#define TCP_REWRITTEN_TCP (.*?)\n\n", top, re.S).group(1)
    assert "hdr.tcp.seq_no" in fields and "hdr.tcp.ack_no" in fields      # in the checksum residual
    assert top.index("#define TCP_REWRITTEN_TCP") < top.index('#include "include/miresga_parser.p4"')


def test_names_of_the_contract():
    """Tables, key fields, actions and params exactly as docs/switch-only-datapath.md lists them (the
    slow path writes conn_in/conn_out by these names through the control plane)."""
    want = {
        "route": (["dst_addr"], {"forward": ["port", "smac", "dmac"], "drop": []}, "drop"),
        "vip": (["dst_addr", "dst_port"], {"mark_vip": [], "miss_vip": []}, "miss_vip"),
        "backends": (["src_addr", "src_port"], {"mark_backend": [], "miss_backend": []}, "miss_backend"),
        "conn_in": (["client_addr", "client_port", "vip_addr", "vip_port"],
                    {"to_backend": ["backend_addr", "backend_port", "port", "smac", "dmac", "ack_delta"],
                     "miss_conn_in": []}, "miss_conn_in"),
        "conn_out": (["backend_addr", "backend_port", "client_addr", "client_port"],
                     {"to_client": ["vip_addr", "vip_port", "seq_delta"], "miss_conn_out": []}, "miss_conn_out"),
        "syn_cookie": ([], {"set_cookie_secret": ["key", "slot"]}, "set_cookie_secret"),
        "slow_path": ([], {"set_slow_path": ["port"]}, "set_slow_path"),
        "protected_hosts": (["dst_addr"], {"mark_protected": [], "miss_protected": []}, "miss_protected"),
        "trusted_ports": (["port"], {"mark_trusted": [], "miss_trusted": []}, "miss_trusted"),
    }
    got = {t.name: ([f.name for f in t.match_fields], {a.name: [p.name for p in a.params] for a in t.actions},
                    t.default_action) for t in SWITCH_ONLY.tables}
    assert got == want
    doc = DOC.read_text()
    for name, (fields, actions, default) in want.items():
        assert f"`{name}`" in doc and f"`{default}" in doc, name
        for f in fields:
            assert f"`{f}`" in doc, (name, f)
        for action, params in actions.items():
            assert f"`{action}" in doc, (name, action)
            for q in params:
                assert re.search(rf"`{action}\([^`]*\b{q}\b", doc), (name, action, q)
    assert not SWITCH_ONLY.table("slow_path").const_default and not SWITCH_ONLY.table("syn_cookie").const_default
    info = {t.preamble.alias: t for t in load_p4info("switch_only").tables}
    assert info["slow_path"].const_default_action_id == 0 and not info["slow_path"].match_fields


def test_profiles_size_conn_in_and_conn_out():
    tofino = load_profile("tofino1")
    for name in ("conn_in", "conn_out"):
        declared = SWITCH_ONLY.table(name).size
        assert tofino.tables[name] == declared == 71680
        assert tofino.capacity(name, declared) == 71680
    assert "conn_client" not in tofino.tables and "conn_server" not in tofino.tables
    assert load_profile("rate-1k").capacity("conn_in", SWITCH_ONLY.table("conn_in").size) == 71680
