"""Pareto fronts of evaluated configs, and their files: JSON, CSV and a PNG plot."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np


def front(values: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``values`` (n x k, all minimised), sorted by the first column.
    Duplicated rows are kept once."""
    v = np.asarray(values, np.float64)
    if len(v) == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort(v.T[::-1])
    keep = np.zeros(len(v), np.int64)
    n = 0
    for i in order:  # a row sorted later never dominates an earlier one: compare with the kept rows only
        if n and np.all(v[keep[:n]] <= v[i], axis=1).any():
            continue
        keep[n] = i
        n += 1
    return keep[:n]


ROW_FIELDS = ("point", "latency_ms", "energy_mj", "area_mm2", "edp_uj_s", "power_w")


def row(rec: dict, params: list[str]) -> dict:
    r = {"point": rec["point"], "latency_ms": rec["latency_s"] * 1e3, "energy_mj": rec["energy_j"] * 1e3,
         "area_mm2": rec["area_mm2"], "edp_uj_s": rec["edp"] * 1e6, "power_w": rec["power_w"]}
    r.update({p: rec["config"][p] for p in params})
    return r


def write(stem: Path, records: list[dict], params: list[str], objectives: list[str], baseline: dict | None = None,
          title: str = "") -> dict:
    """``<stem>_pareto.json``, ``.csv`` and ``.png`` for the front ``records``; returns the paths."""
    rows = [row(r, params) for r in records]
    paths = {"json": stem.with_name(stem.name + "_pareto.json"), "csv": stem.with_name(stem.name + "_pareto.csv"),
             "png": stem.with_name(stem.name + "_pareto.png")}
    paths["json"].write_text(json.dumps({"objectives": objectives, "front": rows}, indent=1))
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(ROW_FIELDS) + list(params))
        w.writeheader()
        w.writerows(rows)
    plot(rows, paths["png"], baseline, title)
    return paths


def plot(rows: list[dict], path: Path | None = None, baseline: dict | None = None, title: str = "", ax=None):
    """Latency vs energy of the front, coloured by area; ``baseline`` (a row) marked. Draws on ``ax`` if
    given, else on a new figure; saves to ``path``. The global matplotlib backend is never changed (a figure
    made here for a file needs no display, and a notebook keeps its inline plots)."""
    own = ax is None
    if own:
        if path is not None:
            from matplotlib.figure import Figure  # not registered with pyplot: headless, nothing to close
            ax = Figure(figsize=(6, 4.2)).subplots()
        else:
            import matplotlib.pyplot as plt
            _, ax = plt.subplots(figsize=(6, 4.2))
    lat = [r["latency_ms"] for r in rows]
    en = [r["energy_mj"] for r in rows]
    sc = ax.scatter(lat, en, c=[r["area_mm2"] for r in rows], cmap="viridis", s=28, label="Pareto front")
    ax.figure.colorbar(sc, ax=ax, label="area (mm$^2$)")
    if baseline:
        ax.scatter([baseline["latency_ms"]], [baseline["energy_mj"]], marker="x", c="red", s=60,
                   label=baseline.get("label", "baseline"))
    ax.set_xscale("log")
    from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("energy (mJ)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    if path is not None:
        if own:
            ax.figure.tight_layout()
        ax.figure.savefig(path, dpi=110)
    return ax
