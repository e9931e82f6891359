"""``CompiledModel.profile()``: one row per accelerator kernel, per CPU layer with MACs and per other kind of CPU
op, printed as an aligned table with totals.

Row keys (None where they do not apply): name, layers (the model's layers the kernel runs, named as
``compile``'s ``precision=`` takes them: frontend/precision.py), op, device ("accelerator" / "cpu"), calls, shape (the user's
data * weight -> output shapes), macs (real MACs per call), padded (the kernel's workload: batch and channels
rounded up to the config's blocks), padded_macs (MACs the accelerator ran per call, padding included),
cycles, utilisation, dram_bytes, energy_uj (per call, from the last run) and schedule ("tuned" from
schedules/, "user" or "default").
"""
from __future__ import annotations

from .hardware.config import AcceleratorConfig
from .runtime import entry

KEYS = ("name", "layers", "op", "device", "calls", "shape", "macs", "padded", "padded_macs", "cycles", "utilisation",
        "dram_bytes", "energy_uj", "schedule")


def _x(dims) -> str:
    return "x".join(str(d) for d in dims)


def user_shape(layer: dict) -> str:
    return f"{_x(layer['data'])} * {_x(layer['weight'])} -> {_x(layer['out'])}"


def padded_shape(wl: dict, cfg: AcceleratorConfig) -> str:
    """The shape the kernel computes: rows / batch and channels rounded up to the GEMM block; a grouped conv's
    merged groups (``merge`` k) as ceil(groups / k) kernel groups of k times the channels."""
    up = lambda v, b: -(-v // b) * b
    k = wl.get("merge", 1)
    n, ci, co = up(wl["n"], cfg.batch), up(k * wl["ci"], cfg.block_in), up(k * wl["co"], cfg.block_out)
    groups = -(-wl.get("groups", 1) // k)
    g = f"{groups}x" if groups > 1 else ""
    if wl["kind"] == "conv2d":
        return f"{g}{n}x{ci}x{wl['h']}x{wl['w']} * {g}{co}x{ci}x{wl['kh']}x{wl['kw']}"
    return f"{g}{n}x{ci} * {g}{ci}x{co}"


def accelerator_rows(kernels: list[dict], calls: dict, cfg: AcceleratorConfig) -> list[dict]:
    rows = []
    for k in kernels:
        st = entry.BY_NAME[k["name"]].last_stats if k["name"] in entry.BY_NAME else None
        layer = k.get("layer") or {}
        rows.append({"name": k["name"], "layers": ", ".join(k.get("layers") or ()) or None,
                     "op": k["workload"]["kind"], "device": "accelerator",
                     "calls": calls.get(k["name"], 0), "shape": user_shape(layer) if layer else None,
                     "macs": layer.get("macs"), "padded": padded_shape(k["workload"], cfg),
                     "padded_macs": st.macs if st else None, "cycles": st.cycles if st else None,
                     "utilisation": st.utilisation if st else None, "dram_bytes": st.dram_bytes if st else None,
                     "energy_uj": st.energy_uj if st else None, "schedule": k.get("source")})
    return rows


def cpu_rows(layers: list[dict], ops: dict) -> list[dict]:
    """``layers``: MAC-bearing ops on the CPU ({op, shape, macs, calls}); ``ops``: {op: count} of the others."""
    blank = dict.fromkeys(KEYS)
    rows = [{**blank, "name": d["op"], "op": d["op"], "device": "cpu", "calls": d["calls"], "shape": d["shape"],
             "macs": d["macs"]} for d in layers]
    return rows + [{**blank, "name": op, "op": op, "device": "cpu", "calls": n} for op, n in sorted(ops.items())]


def _fmt(v, key) -> str:
    if v is None:
        return ""
    if key == "utilisation":
        return f"{v:.1%}"
    if key == "energy_uj":
        return f"{v:,.2f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


class ProfileTable:
    """Per-layer figures of a compiled model's last run. ``rows``: list of dicts (keys in ``KEYS``); iterating,
    ``len`` and indexing go to the rows; ``str()`` / the REPL show an aligned table with totals."""

    COLUMNS = (("name", "kernel"), ("layers", "layers"), ("device", "device"), ("calls", "calls"), ("shape", "shape"),
               ("macs", "MACs/call"), ("padded", "padded kernel shape"), ("padded_macs", "padded MACs"),
               ("cycles", "cycles/call"), ("utilisation", "util"), ("dram_bytes", "DRAM bytes"),
               ("energy_uj", "uJ/call"), ("schedule", "schedule"))

    def __init__(self, rows: list[dict], title: str = "", notes: tuple = ()):
        self.rows, self.title, self.notes = rows, title, notes

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def totals(self) -> dict:
        """Over all calls: MACs (real, accelerator and CPU), padded MACs, cycles, DRAM bytes and energy of the
        accelerator; utilisation weighted by cycles."""
        acc = [r for r in self.rows if r["device"] == "accelerator"]
        tot = lambda key, rows: sum((r[key] or 0) * r["calls"] for r in rows)
        cycles = tot("cycles", acc)
        out = {"calls": sum(r["calls"] for r in self.rows), "macs": tot("macs", self.rows),
               "accelerator_macs": tot("macs", acc), "padded_macs": tot("padded_macs", acc), "cycles": cycles,
               "utilisation": (sum((r["utilisation"] or 0) * (r["cycles"] or 0) * r["calls"] for r in acc) / cycles
                               if cycles else None),
               "dram_bytes": tot("dram_bytes", acc), "energy_uj": float(tot("energy_uj", acc))}
        if not self.ran:  # figures of a run that has not happened are unknown, not 0
            out.update(padded_macs=None, cycles=None, utilisation=None, dram_bytes=None, energy_uj=None)
        return out

    @property
    def ran(self) -> bool:
        """Whether any accelerator kernel has run (the per-run figures exist)."""
        return any(r["cycles"] is not None for r in self.rows if r["device"] == "accelerator")

    def __str__(self) -> str:
        t = self.totals()
        total = {**t, "name": "total (all calls)", "device": "", "schedule": ""}
        cells = [[h for _, h in self.COLUMNS]]
        cells += [[_fmt(r.get(k), k) for k, _ in self.COLUMNS] for r in self.rows]
        cells.append([_fmt(total.get(k), k) for k, _ in self.COLUMNS])
        keep = [j for j in range(len(self.COLUMNS)) if any(c[j] for c in cells[1:])]  # drop empty columns
        width = [max(len(c[j]) for c in cells) for j in keep]
        left = {"name", "layers", "device", "shape", "padded", "schedule"}
        line = lambda c: "  ".join(c[j].ljust(w) if self.COLUMNS[j][0] in left else c[j].rjust(w)
                                   for j, w in zip(keep, width)).rstrip()
        sep = "  ".join("-" * w for w in width)
        out = [self.title] if self.title else []
        out += [line(cells[0]), sep, *map(line, cells[1:-1]), sep, line(cells[-1])]
        acc, mac = t["accelerator_macs"], t["macs"]
        if mac:
            out.append(f"MACs on the accelerator: {acc / mac:.1%} ({acc:,} of {mac:,})")
        if not self.ran and any(r["device"] == "accelerator" for r in self.rows):
            out.append("not run yet: call the model for padded MACs, cycles, DRAM bytes and energy")
        return "\n".join(out + list(self.notes))

    __repr__ = __str__
