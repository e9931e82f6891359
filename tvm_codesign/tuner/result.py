"""``TuneResult``: what a run found, its configs (carrying their stored schedules), and its summary table."""
from __future__ import annotations

import dataclasses
import math

from ..hardware.config import AcceleratorConfig
from ..hardware.space import DesignSpace
from . import pareto

# label -> record field, minimised; how the summary says "less"
LABELS = {"latency": "latency_s", "energy": "energy_j", "area": "area_mm2", "edp": "edp", "power": "power_w"}
GAIN_WORD = {"latency": "faster", "energy": "lower", "area": "smaller", "edp": "lower", "power": "lower"}
LOSS_WORD = {"latency": "slower", "energy": "higher", "area": "larger", "edp": "higher", "power": "higher"}
_PREFIXES = ((1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f"))


def si_scale(values) -> tuple[float, str]:
    """(factor, prefix) putting the largest of ``values`` in [1, 1000): 2e-5 -> (1e-6, "u")."""
    top = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    return next(((f, p) for f, p in _PREFIXES if top >= f), _PREFIXES[-1])


@dataclasses.dataclass
class TuneResult:
    """What a run found. ``front``/``history`` are log records (config values, figures, per-layer knobs).
    ``configs``: label -> the saved config of that best record, named ``<run>_<label>``, whose ``schedules``
    points at its tuned schedules (empty with ``write=False``)."""

    run: str
    space: DesignSpace
    objectives: list
    layers: list
    history: list
    front: list
    best: dict            # label -> record (best feasible per objective, and EDP)
    baseline: dict        # the space's base config with tuned schedules
    verified: list = dataclasses.field(default_factory=list)
    files: dict = dataclasses.field(default_factory=dict)
    wall_s: float = 0.0
    configs: dict = dataclasses.field(default_factory=dict)

    @property
    def evaluations(self) -> int:
        return len(self.history)

    def _rec(self, rec_or_label) -> dict:
        if isinstance(rec_or_label, str):
            if rec_or_label not in self.best:
                raise KeyError(f"no best {rec_or_label!r} in this run; labels: {list(self.best)}")
            return self.best[rec_or_label]
        return rec_or_label

    def config(self, rec_or_label) -> AcceleratorConfig:
        """The AcceleratorConfig of a best label or a record. A best one is the saved ``<run>_<label>``
        config, which ``build``/``compile`` run with its tuned schedules from any working directory; any other
        record gives its space point (default schedules)."""
        if isinstance(rec_or_label, str) and rec_or_label in self.configs:
            return self.configs[rec_or_label]
        rec = self._rec(rec_or_label)
        for lbl, r in self.best.items():
            if r is rec and lbl in self.configs:
                return self.configs[lbl]
        return self.space.config(rec["point"])

    def schedules(self, rec_or_label) -> dict:
        """{layer name: Knobs dict} of a record: the fastest measured schedule where the layer was verified,
        else the model's pick."""
        rec = self._rec(rec_or_label)
        measured = {(v["point"], v["key"]): v["best_knobs"] for v in self.verified}
        return {ly["name"]: measured.get((rec["point"], ly["key"]), ly["knobs"]) for ly in rec["layers"]}

    def compare(self, a, b) -> list[dict]:
        """Layer by layer: cycles and energy of two records (or best labels), and b's speed-up over a."""
        ra, rb = self._rec(a), self._rec(b)
        ca, cb = self.space.config(ra["point"]), self.space.config(rb["point"])
        rows = []
        for la, lb in zip(ra["layers"], rb["layers"]):
            ta, tb = la["cycles"] / ca.clock_mhz, lb["cycles"] / cb.clock_mhz
            rows.append({"layer": la["name"], "count": la["count"], "a_us": ta, "b_us": tb, "speedup": ta / tb,
                         "a_energy_uj": la["energy_pj"] / 1e6, "b_energy_uj": lb["energy_pj"] / 1e6,
                         "a_knobs": la["knobs"], "b_knobs": lb["knobs"]})
        return rows

    def table(self) -> str:
        """The base config, the Pareto front and any best record off the front, one row each; every column
        in the unit that suits its magnitude; each best row names every label it is best for."""
        params = list(self.space.params)
        on_front = {id(r) for r in self.front}
        recs = [self.baseline] + self.front + list({id(r): r for r in self.best.values()
                                                    if id(r) not in on_front}.values())
        marks: dict = {}
        for lbl, r in self.best.items():
            marks.setdefault(id(r), []).append(lbl)
        cols = [("latency", "s", "latency_s"), ("energy", "J", "energy_j"), ("area", "mm2", "area_mm2"),
                ("EDP", "J*s", "edp"), ("power", "W", "power_w")]
        cells = [[("base" if r is self.baseline else str(r["point"])) for r in recs]]
        heads = ["point"]
        for name, unit, key in cols:
            vals = [r[key] for r in recs]
            f, pre = (1.0, "") if key == "area_mm2" else si_scale(vals)
            top = max((abs(v) / f for v in vals), default=0.0)
            dec = 3 if top < 10 else 2 if top < 100 else 1
            heads.append(f"{name} {pre}{unit}")
            cells.append([f"{v / f:.{dec}f}" for v in vals])
        base_vals = {p: getattr(self.space.base, p) for p in params}
        for p in params:
            heads.append(p)
            cells.append([f"{(base_vals[p] if r is self.baseline else r['config'][p]):g}" for r in recs])
        widths = [max(len(h), *(len(c) for c in col)) for h, col in zip(heads, cells)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths))]
        for i, r in enumerate(recs):
            line = "  ".join(col[i].rjust(w) for col, w in zip(cells, widths))
            if id(r) in marks:
                line += "  <- best " + ", ".join(marks[id(r)]) + ("" if id(r) in on_front else " (off the front)")
            lines.append(line)
        return "\n".join(lines)

    def gains(self) -> str:
        """One line: each best config against the base config (both with tuned schedules); a best worse than
        the base (a space that cannot match it) reads "slower" / "higher" / "larger", never "0.11x faster"."""
        parts = []
        for lbl, r in self.best.items():
            if r[LABELS[lbl]] > 0:
                gain = self.baseline[LABELS[lbl]] / r[LABELS[lbl]]
                word = f"{gain:.2f}x {GAIN_WORD[lbl]}" if gain >= 1 else f"{1 / gain:.2f}x {LOSS_WORD[lbl]}"
                parts.append(f"best {'EDP' if lbl == 'edp' else lbl} {word}")
        return f"vs {self.space.base.name} (tuned schedules): " + ", ".join(parts)

    def plot(self, ax=None, path=None):
        params = list(self.space.params)
        base = {**pareto.row({**self.baseline, "point": -1, "config": {p: 0 for p in params}}, params),
                "label": self.space.base.name}
        return pareto.plot([pareto.row(r, params) for r in self.front], path, base, self.run, ax)
