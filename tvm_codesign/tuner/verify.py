"""Re-verify the analytical model on the configs a run picked: compile every layer with its chosen schedule
(TIR -> tensorize -> lowering) and run the timing simulator on the real program. Logged as ``source:
simulator`` records next to the model's numbers."""
from __future__ import annotations

from ..hardware.space import DesignSpace
from ..schedules.layout import fold_kw
from .network import Layer


def verify_records(space: DesignSpace, records: list[dict], layers: list[Layer], log, done: dict) -> list[dict]:
    from ..api import build
    by_key = {ly.key: ly for ly in layers}
    out = []
    for rec in records:
        cfg = space.config(rec["point"])
        for row in rec["layers"]:
            key = (rec["point"], row["key"])
            if key not in done:
                wl = by_key[row["key"]].workload
                kwl = fold_kw(wl, cfg) or wl
                st = build(kwl, cfg, knobs=row["knobs"]).time()
                v = {"type": "verify", "point": rec["point"], "key": row["key"], "layer": row["name"],
                     "knobs": row["knobs"], "model_cycles": row["cycles"], "sim_cycles": int(st.cycles),
                     "model_energy_pj": row["energy_pj"], "sim_energy_pj": float(st.energy_pj["total"]),
                     "error": row["cycles"] / st.cycles - 1, "source": "simulator"}
                log.append(v)
                done[key] = v
            out.append(done[key])
    return out
