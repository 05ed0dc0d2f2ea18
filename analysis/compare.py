"""Ratios of a system against a baseline per (workload, users), beside the paper's claims.

The ratio is a ratio of means over repetitions: throughput = mean rps(system) / mean rps(baseline),
latency = mean p50 (or p99) of the system / the baseline's. Its 95% confidence interval is a
t-interval on the log of the ratio (delta method: var(log mean) ~ s^2 / (n mean^2); Welch-
Satterthwaite degrees of freedom, rounded down), so it stays positive and is symmetric in log space.
With fewer than two usable repetitions on either side the interval is NaN and the `note` says so.
Cells with errors (or that failed) are excluded from the means and listed in `excluded`.
In a run with several switch profiles (a sweep), systems are compared under the same profile only.
In an incomplete run (interrupted), `lacking_sides` lists the pairs whose cells on one side did not run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

SMALL_MAX = 64 * 1024  # "small" workloads: every object <= 64 KB
LARGE_MIN = 1024 * 1024  # "large" workloads: every object >= 1 MB
METRICS = {"throughput": "rps", "latency_p50": "p50_us", "latency_p99": "p99_us"}
# Preferred order of baselines when pairing systems automatically.
BASELINES = ("haproxy", "switch-only", "nginx-proxy", "direct")
SUBJECT = "miresga"

# 0.975 quantiles of Student's t by degrees of freedom (1..30, then a few more); beyond: normal.
_T975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
    11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
    20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
    29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980,
}


@dataclass(frozen=True)
class Claim:
    value: float
    text: str


# The paper's claims (WWW'25): (system, baseline) -> size class ("any", "small", "large") -> metric.
CLAIMS: dict[tuple[str, str], dict[str, dict[str, Claim]]] = {
    ("miresga", "haproxy"): {
        "any": {
            "throughput": Claim(3.9, "3.9x vs software LB"),
            "latency_p50": Claim(0.4, "0.4x vs software LB"),
            "latency_p99": Claim(0.4, "0.4x vs software LB"),
        },
    },
    ("miresga", "switch-only"): {
        "large": {"throughput": Claim(1.0, "~1x on large objects (>= 1 MB)")},
        "small": {
            "throughput": Claim(5.0, "5.0x on small objects (<= 64 KB)"),
            "latency_p50": Claim(0.2, "0.2x on small objects (<= 64 KB)"),
            "latency_p99": Claim(0.2, "0.2x on small objects (<= 64 KB)"),
        },
    },
}


def t975(df: float) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (rounded down; conservative)."""
    if math.isnan(df) or df < 1:
        return math.nan
    d = math.floor(df)
    if d in _T975:
        return _T975[d]
    below = [k for k in _T975 if k <= d]
    return _T975[max(below)] if d <= 120 else 1.960


def size_class(min_bytes: float, max_bytes: float) -> str:
    """"small" (all objects <= 64 KB), "large" (all >= 1 MB) or "mix"."""
    if not math.isnan(max_bytes) and max_bytes <= SMALL_MAX:
        return "small"
    if not math.isnan(min_bytes) and min_bytes >= LARGE_MIN:
        return "large"
    return "mix"


@dataclass(frozen=True)
class Ratio:
    ratio: float
    low: float
    high: float
    note: str


def ratio_of_means(x: np.ndarray, y: np.ndarray) -> Ratio:
    """mean(x) / mean(y) with a 95% t-interval on the log ratio (see the module docstring)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size == 0 or y.size == 0:
        return Ratio(math.nan, math.nan, math.nan, "no usable repetitions")
    mx, my = float(x.mean()), float(y.mean())
    if mx <= 0 or my <= 0:
        return Ratio(math.nan, math.nan, math.nan, "non-positive mean")
    r = mx / my
    if x.size < 2 or y.size < 2:
        return Ratio(r, math.nan, math.nan, f"no interval: {min(x.size, y.size)} repetition(s)")
    a = float(x.var(ddof=1)) / (x.size * mx**2)
    b = float(y.var(ddof=1)) / (y.size * my**2)
    if a + b == 0:
        return Ratio(r, r, r, "")
    df = (a + b) ** 2 / (a**2 / (x.size - 1) + b**2 / (y.size - 1))
    half = t975(df) * math.sqrt(a + b)
    return Ratio(r, r * math.exp(-half), r * math.exp(half), "")


def profile_sweep(cells: pd.DataFrame) -> bool:
    """True when the cells ran under more than one switch profile (a suite's switch_profiles axis)."""
    if "switch_profile" not in cells.columns:
        return False
    return cells["switch_profile"].fillna("").astype(str).replace("", pd.NA).dropna().nunique() > 1


def compare(cells: pd.DataFrame, system: str, baseline: str) -> pd.DataFrame:
    """Tidy rows (one per workload x users x metric, and switch profile in a sweep) of `system`
    against `baseline`."""
    rows = []
    both = cells[cells["system"].isin([system, baseline])].copy()
    sweep = profile_sweep(cells)
    both["_profile"] = both["switch_profile"].fillna("").astype(str) if sweep else ""
    # An open-loop cell is compared with the other system at the same offered rate only.
    both["_load"] = both["load"] if "load" in both.columns else both["users"].astype(str)
    for (workload, users, load, profile), group in both.groupby(["workload", "users", "_load", "_profile"],
                                                                sort=True, dropna=False):
        sys_cells = group[group["system"] == system]
        base_cells = group[group["system"] == baseline]
        if sys_cells.empty or base_cells.empty:
            continue
        excluded = sorted(group.loc[~group["usable"].astype(bool), "cell_id"])
        sx = sys_cells[sys_cells["usable"].astype(bool)]
        by = base_cells[base_cells["usable"].astype(bool)]
        cls = size_class(float(group["min_object_bytes"].min()), float(group["max_object_bytes"].max()))
        claims = CLAIMS.get((system, baseline), {})
        for metric, column in METRICS.items():
            r = ratio_of_means(sx[column].to_numpy(), by[column].to_numpy())
            claim = claims.get(cls, {}).get(metric) or claims.get("any", {}).get(metric)
            rows.append({
                "system": system, "baseline": baseline, "workload": workload, "users": users, "load": load,
                "switch_profile": profile, "size_class": cls, "metric": metric,
                "system_mean": float(sx[column].mean()) if len(sx) else math.nan,
                "baseline_mean": float(by[column].mean()) if len(by) else math.nan,
                "ratio": r.ratio, "ci_low": r.low, "ci_high": r.high,
                "n_system": len(sx), "n_baseline": len(by),
                "claim": claim.value if claim else math.nan, "claim_text": claim.text if claim else "",
                "note": r.note, "excluded": excluded,
            })
    columns = ["system", "baseline", "workload", "users", "load", "switch_profile", "size_class", "metric",
               "system_mean", "baseline_mean", "ratio", "ci_low", "ci_high", "n_system", "n_baseline", "claim",
               "claim_text", "note", "excluded"]
    return pd.DataFrame(rows, columns=columns)


def default_pairs(systems: list[str]) -> list[tuple[str, str]]:
    """Miresga against every baseline present; every other system against "direct" (no LB)."""
    present = list(dict.fromkeys(systems))
    pairs: list[tuple[str, str]] = []
    if SUBJECT in present:
        pairs += [(SUBJECT, b) for b in BASELINES if b in present]
    if "direct" in present:
        pairs += [(s, "direct") for s in present if s not in (SUBJECT, "direct")]
    return pairs


def compare_all(cells: pd.DataFrame, pairs: list[tuple[str, str]] | None = None) -> pd.DataFrame:
    """`compare` over `pairs` (default: `default_pairs` of the systems in `cells`), concatenated."""
    if pairs is None:
        pairs = default_pairs(list(cells["system"].dropna()))
    frames = [compare(cells, s, b) for s, b in pairs]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return compare(cells.iloc[0:0], "", "")
    return pd.concat(frames, ignore_index=True)


def cell_key(cell_id: str) -> tuple[str, str, int, str]:
    """(system, workload, users, switch profile or "") of a cell id
    `<system>--<workload>--u<users>[--<profile>]--r<repetition>` (docs/run-directory.md)."""
    parts = cell_id.split("--")
    if len(parts) not in (4, 5) or not parts[2].startswith("u") or not parts[-1].startswith("r"):
        raise ValueError(f"not a cell id: {cell_id!r}")
    return parts[0], parts[1], int(parts[2][1:]), parts[3] if len(parts) == 5 else ""


def lacking_sides(planned: list[str], ran: list[str], pairs: list[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Pairs (default: `default_pairs` of the planned systems) and the (workload, users, profile)
    both sides planned, where one side or both have no cell that ran: one row each, `missing` the
    system(s) without cells. Empty for a complete run."""
    plan = _keys(planned)
    have = set(_keys(ran))
    pairs = default_pairs([k[0] for k in plan]) if pairs is None else pairs
    keys = list(dict.fromkeys(k[1:] for k in plan))
    rows = []
    for s, b in pairs:
        for wl, users, profile in keys:
            if (s, wl, users, profile) not in plan or (b, wl, users, profile) not in plan:
                continue
            missing = [x for x in (s, b) if (x, wl, users, profile) not in have]
            if missing:
                rows.append({"system": s, "baseline": b, "workload": wl, "users": users,
                             "switch_profile": profile, "missing": missing})
    return pd.DataFrame(rows, columns=["system", "baseline", "workload", "users", "switch_profile", "missing"])


def _keys(cell_ids: list[str]) -> list[tuple[str, str, int, str]]:
    out = []
    for c in cell_ids:
        try:
            out.append(cell_key(c))
        except ValueError:
            continue        # not the harness's id scheme: nothing to pair
    return out
