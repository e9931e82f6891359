"""Re-verify the analytical model on the configs a run picked, and measure their schedules.

For every layer of a picked config: compile the schedule the model chose (TIR -> tensorize -> lowering), run
the timing simulator on the real program and log both numbers (``source: simulator``). With ``top`` > 1 the
model's next-ranked schedules are compiled and simulated too, and the fastest measured one becomes the layer's
schedule (what ``_write`` stores in ``schedules/``), as AutoTVM measured its cost model's picks on hardware.
"""
from __future__ import annotations

from ..hardware.space import DesignSpace
from ..schedules.knobs import Knobs
from ..schedules.groups import kernel_workload
from . import knob_grid
from .network import Layer


def _measure(wl, cfg, knobs: dict) -> dict:
    from ..api import build_workload
    st = build_workload(wl, cfg, Knobs.from_dict(knobs)).time()
    return {"knobs": knobs, "sim_cycles": int(st.cycles), "sim_energy_pj": float(st.energy_pj["total"])}


def verify_records(space: DesignSpace, records: list[dict], layers: list[Layer], log, done: dict,
                   top: int = 1, progress: bool = False) -> list[dict]:
    """One ``verify`` record per (picked config, layer), appended to ``log``; ``done`` caches earlier ones.
    ``progress``: a bar over the kernels compiled and simulated."""
    from tqdm.auto import tqdm
    if top < 1:
        raise ValueError(f"top must be >= 1 (schedules to measure per layer), got {top}")
    by_key = {ly.key: ly for ly in layers}
    todo = sum(1 for rec in records for row in rec["layers"]
               if (rec["point"], row["key"]) not in done or done[(rec["point"], row["key"])].get("top", 1) < top)
    bar = tqdm(total=todo * top, desc="verify: compile + simulate", unit="kernel", disable=not progress or not todo,
               leave=False)
    out = []
    for rec in records:
        cfg = space.config(rec["point"])
        for row in rec["layers"]:
            key = (rec["point"], row["key"])
            if key not in done or done[key].get("top", 1) < top:
                wl = by_key[row["key"]].workload
                kwl = kernel_workload(wl, cfg)
                bar.set_postfix_str(row["name"])
                chosen = _measure(kwl, cfg, row["knobs"])
                bar.update()
                tried = [chosen]
                if top > 1:
                    seen = {Knobs.from_dict(row["knobs"])}
                    for k, _ in knob_grid.ranked(kwl, cfg, top + 1):
                        if k not in seen and len(tried) < top:
                            seen.add(k)
                            tried.append(_measure(kwl, cfg, k.to_dict()))
                            bar.update()
                bar.update(top - len(tried))  # fewer distinct schedules than asked
                fast = min(tried, key=lambda t: (t["sim_cycles"], t["sim_energy_pj"]))
                v = {"type": "verify", "point": rec["point"], "key": row["key"], "layer": row["name"],
                     "knobs": row["knobs"], "model_cycles": row["cycles"], "sim_cycles": chosen["sim_cycles"],
                     "model_energy_pj": row["energy_pj"], "sim_energy_pj": chosen["sim_energy_pj"],
                     "error": row["cycles"] / chosen["sim_cycles"] - 1, "top": top, "measured": tried,
                     "best_knobs": fast["knobs"], "best_sim_cycles": fast["sim_cycles"],
                     "best_sim_energy_pj": fast["sim_energy_pj"], "source": "simulator"}
                log.append(v)
                done[key] = v
            out.append(done[key])
    bar.close()
    return out
