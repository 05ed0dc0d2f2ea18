"""Pipeline miresga: constants of the C headers and the P4 includes against tables.py and cookie.py
(the P4Info and the compiled object are checked for every pipeline by test_correspondence.py)."""

from __future__ import annotations

import re
from pathlib import Path

from system.switch import cookie
from system.switch.tables import MIRESGA

BPF_DIR = Path(__file__).resolve().parents[1] / "bpf"
P4SRC = Path(__file__).resolve().parents[3] / "p4src"


def _defines(path: Path) -> dict[str, int]:
    return {k: int(v, 0) for k, v in re.findall(r"#define (\w+) (0x[0-9a-fA-F]+|\d+)u?\b", path.read_text())}


def test_c_constants_match_the_spec():
    d = _defines(BPF_DIR / "miresga_tables.h") | _defines(BPF_DIR / "synack_tables.h") \
        | _defines(BPF_DIR / "guard_tables.h")   # shared parts
    assert d["MIRESGA_NUM_TABLES"] == len(MIRESGA.tables)
    for t in MIRESGA.tables:
        if t.name == "route":
            continue
        assert d[f"{t.name.upper()}_TABLE_SIZE"] == t.size, t.name
        assert d[f"TABLE_{t.name.upper()}"] == t.table_id, t.name
        prefix = f"{t.name.upper()}_ACTION_"
        codes = {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}
        assert sorted(codes.values()) == sorted(a.code for a in t.actions), t.name
    assert sorted(t.table_id for t in MIRESGA.tables) == list(range(len(MIRESGA.tables)))
    assert d["FRONTEND_BUCKETS"] == cookie.FRONTEND_BUCKETS == MIRESGA.table("frontend_bucket").size
    assert (d["SWITCH_MSS"], d["SWITCH_WSCALE"], d["SWITCH_WINDOW"], d["NO_WSCALE"], d["MAX_WSCALE"]) == \
        (cookie.SWITCH_MSS, cookie.SWITCH_WSCALE, cookie.SWITCH_WINDOW, cookie.NO_WSCALE, cookie.MAX_WSCALE)
    assert d["COOKIE_MAC_MASK"] == cookie.MAC_MASK


def test_p4_constants_match_the_spec():
    sizes = _defines(P4SRC / "include" / "miresga_sizes.p4")
    assert 1 << sizes["FRONTEND_BUCKETS_LOG2"] == cookie.FRONTEND_BUCKETS
    control = (P4SRC / "include" / "miresga_control.p4").read_text()
    synack = (P4SRC / "include" / "synack.p4").read_text()     # control SynAck, shared with switch_only
    opt_mss = re.search(r"SYNACK_OPT_MSS = (0x[0-9a-f]+)", synack).group(1)
    opt_ws = re.search(r"SYNACK_OPT_WSCALE = (0x[0-9a-f]+)", synack).group(1)
    assert "SynAck(true) synack;" in control and "synack.apply(" in control
    opts = cookie.synack_options(cookie.SynOptions(sack_ok=True, wscale=1))
    assert int(opt_mss, 16).to_bytes(4, "big") == opts[0:4]
    assert int(opt_ws, 16).to_bytes(3, "big") == opts[7:10]
    # every table of the spec is applied in the P4 source, and the bucket hash masks log2(N) bits
    for t in MIRESGA.tables:
        assert re.search(rf"\b{t.name}\.apply\(\)", control + (P4SRC / "include" / "forwarding.p4").read_text())
    assert "[FRONTEND_BUCKETS_LOG2 - 1:0]" in control


def test_the_guard_is_applied_alike_in_p4_and_ebpf():
    """The back-end guard (docs/miresga-datapath.md "The guard"), both pipelines: P4 looks up
    protected_hosts for IPv4, trusted_ports on its hit, and drops on trusted_ports' miss unless vip
    hit (keeping the frame from route, frontend_bucket and slow_path); the eBPF twin looks the same
    tables up after vip missed, for parsed TCP and for every other frame: the same decisions, as a
    VIP is never a protected host."""
    for control in ("miresga_control.p4", "switch_only_control.p4"):
        text = (P4SRC / "include" / control).read_text()
        assert re.search(r"if \(hdr\.ipv4\.isValid\(\)\) \{\s*if \(protected_hosts\.apply\(\)\.hit\) \{\s*"
                         r"if \(!trusted_ports\.apply\(\)\.hit\) \{\s*if \(!ig_md\.vip_hit\) \{\s*"
                         r"ig_md\.guard_drop = true;\s*ig_dprsr_md\.drop_ctl = 0x1;", text), control
        assert re.search(r"action mark_vip\(\) \{\s*ig_md\.vip_hit = true;", text), control
        assert "&& !ig_md.guard_drop) {" in text, control                 # frontend_bucket / slow_path
    for top in ("miresga.p4", "switch_only.p4"):
        assert "if (ig_md.path == PATH_ROUTE && !ig_md.guard_drop) {" in (P4SRC / top).read_text(), top
    parser = (P4SRC / "include" / "miresga_parser.p4").read_text()
    assert "ig_md.vip_hit = false;" in parser and "ig_md.guard_drop = false;" in parser
    for src in ("miresga.c", "switch_only.c"):
        c = (BPF_DIR / src).read_text()
        assert re.search(r"if \(!parse_l4\(skb, &eth, &ip, &tcp\)\) \{\s*reason = guard_frame\(skb, md\);", c), src
        vip_branch_end = c.index("if (vv) {")
        assert c.index("reason = guard_apply(md, daddr);") > vip_branch_end, src
        assert c.index("reason = guard_apply(md, daddr);") < c.index("bkey.src_addr = saddr;"), src
