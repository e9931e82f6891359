"""Co-design gain on ResNet-18: the best config with area <= vta_default's (with its tuned schedules) vs
vta_default with its own tuned schedules, by the analytical model and by compile + simulate of every layer.

    .venv/bin/python benchmarks/codesign_gain.py --json

Headline: the ``iso`` space (vta_default's 100 MHz clock and 8 B/cycle DRAM, so the gain is micro-architecture,
not a faster clock or memory). ``full_space`` repeats it on ``edge``, where clock and bandwidth also vary.
``clock_and_interface``: the ``iso`` best-latency config (and ``vta_default``) at every clock and DRAM bandwidth
``edge`` offers, by the analytical model with tuned schedules: what a faster clock or interface adds (latency)
and costs (energy, power, area, supply, the DRAM part ``physical`` derives).
Last line with --json: {"latency_gain", "edp_gain", "area_ratio", "simulated": {...}, "full_space": {...},
"clock_and_interface": {...}}.
"""
from __future__ import annotations

import argparse
import json
import tempfile

from _common import resnet18_layers

import tvm_codesign as tc
from tvm_codesign.schedules.groups import kernel_workload
from tvm_codesign.tuner import network


def simulate(cfg, rec, layers) -> dict:
    """Compile every layer with the record's knobs and run the timing simulator: network latency and energy."""
    by_key = {ly.key: ly for ly in layers}
    cycles = pj = 0.0
    for row in rec["layers"]:
        wl = by_key[row["key"]].workload
        st = tc.build(kernel_workload(wl, cfg), cfg, knobs=row["knobs"]).time()
        cycles += row["count"] * st.cycles
        pj += row["count"] * st.energy_pj["total"]
    lat = cycles / (cfg.clock_mhz * 1e6)
    return {"latency_s": lat, "energy_j": pj * 1e-12, "edp": lat * pj * 1e-12}


def gain(layers, space, budget, out, sim: bool) -> dict:
    base_cfg = tc.AcceleratorConfig.load("vta_default")
    base = network.evaluate(base_cfg, layers)
    res = tc.tune(layers, space, objectives=["latency", "edp"], budget=budget, area_max=base["area_mm2"], out_dir=out,
                  progress=False, verify=0, write=False, run=f"gain-{space}")
    bl, be = res.best["latency"], res.best["edp"]
    r = {"space": space, "configs": res.space.size, "evaluations": res.evaluations,
         "latency_gain": base["latency_s"] / bl["latency_s"], "edp_gain": base["edp"] / be["edp"],
         "area_ratio": bl["area_mm2"] / base["area_mm2"], "edp_area_ratio": be["area_mm2"] / base["area_mm2"],
         "best_latency_config": bl["config"], "best_edp_config": be["config"],
         "baseline": {k: base[k] for k in ("latency_s", "energy_j", "edp", "area_mm2")}}
    if sim:
        sb = simulate(base_cfg, base, layers)
        sl = simulate(res.config(bl), bl, layers)
        se = sl if be is bl else simulate(res.config(be), be, layers)
        r["simulated"] = {"latency_gain": sb["latency_s"] / sl["latency_s"], "edp_gain": sb["edp"] / se["edp"],
                          "baseline_latency_ms": sb["latency_s"] * 1e3, "best_latency_ms": sl["latency_s"] * 1e3}
    return r


def clock_and_interface(layers, configs: dict) -> dict:
    """Each named config at every (clock, bandwidth) of the edge space: latency, energy, power, area, part."""
    from tvm_codesign.hardware.space import DesignSpace
    edge = DesignSpace.load("edge").params
    out = {}
    for name, cfg in configs.items():
        rows = []
        for mhz in edge["clock_mhz"]:
            for bw in edge["dram_bandwidth"]:
                c = cfg.replace(name=f"{cfg.name}_{mhz:g}_{bw:g}", clock_mhz=mhz, dram_bandwidth=bw)
                r = network.evaluate(c, layers)
                row = {"clock_mhz": mhz, "dram_bandwidth": bw, "feasible": r["feasible"]}
                if r["feasible"]:
                    row.update({k: r[k] for k in ("latency_s", "energy_j", "power_w", "area_mm2", "edp",
                                                   "dram_interface", "vdd")})
                else:
                    row["reason"] = r["reason"]
                rows.append(row)
        out[name] = rows
    return out


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    layers = resnet18_layers()
    with tempfile.TemporaryDirectory() as out:
        iso = gain(layers, "iso", a.budget, out, sim=True)
        full = gain(layers, "edge", a.budget, out, sim=False)
    r = {k: iso[k] for k in ("latency_gain", "edp_gain", "area_ratio", "edp_area_ratio")}
    best = tc.AcceleratorConfig.load("vta_default").replace(name="iso_best_latency", **iso["best_latency_config"])
    sweep = clock_and_interface(layers, {"vta_default": tc.AcceleratorConfig.load("vta_default"), "iso_best": best})
    r.update(simulated=iso["simulated"], iso=iso, full_space=full, clock_and_interface=sweep)
    print(json.dumps(r, default=float))
    return r


if __name__ == "__main__":
    main()
