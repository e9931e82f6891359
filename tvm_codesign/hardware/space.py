"""Hardware design spaces: which config fields vary and over what, as data (``targets/spaces/*.json``).

    {"name": "edge", "base": "vta_default",
     "params": {"block_in": [8, 16, 32], "inp_buffer_bytes": {"pow2": [13, 17]}, "dram_bandwidth": [4, 8, 16]},
     "constraints": {"area_mm2_max": 3.0, "sram_kib_max": 512, "power_w_max": 0.5}}

A param is a list of choices or ``{"pow2": [lo, hi]}`` (2^lo .. 2^hi); every other field comes from ``base``.
A point is one index per param (mixed radix over the choices), so a space can be enumerated, sampled and
searched by index. Points whose config is invalid (``ConfigError``) or breaks a constraint are infeasible.
Area and on-chip SRAM (micro-op + input + weight + accumulator buffers) are properties of a config; average
power depends on the network, so the tuner applies ``power_w_max`` to each evaluated config. A point is also
infeasible when ``physical`` cannot build it: its clock above what the core reaches, no listed DRAM part delivering
its bandwidth x clock, or an SRAM bank off the CACTI table (``physical.why_infeasible``).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from ..errors import ConfigError, SpaceError
from .. import physical
from .config import RENAMED, AcceleratorConfig, field_error, target_dirs

CONSTRAINTS = ("area_mm2_max", "sram_kib_max", "power_w_max")


def sram_kib(cfg: AcceleratorConfig) -> float:
    """On-chip SRAM of a config: micro-op, input, weight and accumulator buffers, KiB."""
    return (cfg.uop_buffer_bytes + cfg.inp_buffer_bytes + cfg.wgt_buffer_bytes + cfg.acc_buffer_bytes) / 1024


@dataclasses.dataclass(frozen=True)
class DesignSpace:
    name: str
    base: AcceleratorConfig
    params: dict           # field -> tuple of choices
    constraints: dict

    @classmethod
    def from_dict(cls, d: dict) -> "DesignSpace":
        if not isinstance(d, dict) or not isinstance(d.get("params"), dict) or not d["params"]:
            raise ConfigError("params", "a design space needs a non-empty 'params' object")
        unknown = set(d) - {"name", "description", "base", "params", "constraints"}
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown key in a design space (known: name, description, base, "
                              "params, constraints)")
        base = AcceleratorConfig.load(d.get("base", "vta_default"))
        fields = {f.name for f in dataclasses.fields(AcceleratorConfig)} - {"name", "description", "schedules"}
        params = {}
        for field, spec in d["params"].items():
            if field in RENAMED:
                raise ConfigError(field, RENAMED[field])
            if field not in fields:
                raise ConfigError(field, f"not a hardware field; known: {sorted(fields)}")
            if isinstance(spec, dict) and set(spec) == {"pow2"} and len(spec["pow2"]) == 2:
                lo, hi = (int(v) for v in spec["pow2"])
                if not 0 <= lo <= hi <= 40:
                    raise ConfigError(field, f"pow2 range {spec['pow2']} must satisfy 0 <= lo <= hi <= 40")
                choices = tuple(1 << e for e in range(lo, hi + 1))
            elif isinstance(spec, list) and spec:
                choices = tuple(spec)
            else:
                raise ConfigError(field, f"expected a non-empty list of choices or {{'pow2': [lo, hi]}}, got {spec!r}")
            kind = type(getattr(base, field))
            for c in choices:
                if isinstance(c, bool) or not isinstance(c, (int, float)) or (kind is int and not (math.isfinite(c) and c == int(c))):
                    raise ConfigError(field, f"choice {c!r} is not {'an integer' if kind is int else 'a number'}")
                err = field_error(field, kind(c))  # the field's own rule: sizes > 0 and powers of two, ...
                if err:
                    raise ConfigError(field, f"choice {c!r} of design space {d.get('name', 'space')!r}: {err}")
            params[field] = tuple(kind(c) for c in choices)
        constraints = dict(d.get("constraints", {}))
        for k, v in constraints.items():
            if k not in CONSTRAINTS:
                raise ConfigError(k, f"unknown constraint; known: {list(CONSTRAINTS)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(k, f"a constraint must be a number > 0, got {v!r}")
        return cls(str(d.get("name", "space")), base, params, constraints)

    @classmethod
    def load(cls, name_or_path) -> "DesignSpace":
        """A shipped space by name (``targets/spaces/<name>.json``) or a JSON file by path."""
        p = Path(name_or_path)
        if not p.suffix:
            found = [d / "spaces" / f"{p.name}.json" for d in target_dirs() if (d / "spaces" / f"{p.name}.json").is_file()]
            if not found:
                known = sorted({q.stem for d in target_dirs() for q in (d / "spaces").glob("*.json")})
                raise SpaceError(f"no design space named {p.name!r}; available: {known}")
            p = found[0]
        try:
            return cls.from_dict(json.loads(p.read_text()))
        except FileNotFoundError:
            raise SpaceError(f"file {str(p)!r} does not exist") from None
        except json.JSONDecodeError as e:
            raise SpaceError(f"{p} is not valid JSON: {e}") from None

    @property
    def size(self) -> int:
        return math.prod(len(c) for c in self.params.values())

    @property
    def radices(self) -> np.ndarray:
        return np.array([len(c) for c in self.params.values()], np.int64)

    def digits(self, index) -> np.ndarray:
        """Flat point indices -> (n, n_params) choice indices (mixed radix, first param most significant)."""
        idx = np.atleast_1d(np.asarray(index, np.int64))
        if np.any((idx < 0) | (idx >= self.size)):
            raise ConfigError("index", f"point indices must be in [0, {self.size})")
        out = np.zeros((idx.size, len(self.params)), np.int64)
        for j, r in reversed(list(enumerate(self.radices))):
            out[:, j], idx = idx % r, idx // r
        return out

    def config(self, index: int) -> AcceleratorConfig:
        """The config of one point (ConfigError if the combination is invalid)."""
        d = self.digits(index)[0]
        values = {f: c[k] for (f, c), k in zip(self.params.items(), d)}
        return self.base.replace(name=f"{self.name}_{int(index)}", **values)

    def limits(self, area_max: float | None = None, sram_max: float | None = None,
               power_max: float | None = None) -> dict:
        """A search's hard limits: each argument, else the space's constraint of that name (None: no limit)."""
        given = {"area_mm2_max": area_max, "sram_kib_max": sram_max, "power_w_max": power_max}
        return {k: v if v is not None else self.constraints.get(k) for k, v in given.items()}

    def feasible(self, cfg: AcceleratorConfig, limits: dict | None = None, area: float | None = None) -> bool:
        """Whether ``cfg`` can be built (``physical.why_infeasible``) and meets the area and SRAM limits
        (``limits``: from ``limits()``, default the space's; ``area``: its total mm^2 if already computed)."""
        lim = limits if limits is not None else self.limits()
        if area is None:
            if physical.why_infeasible(cfg):
                return False
            area = physical.area_mm2(cfg)["total"]
        return ((lim["area_mm2_max"] is None or area <= lim["area_mm2_max"])
                and (lim["sram_kib_max"] is None or sram_kib(cfg) <= lim["sram_kib_max"]))

    def sample(self, n: int, seed: int = 0) -> list[tuple[int, AcceleratorConfig]]:
        """Up to ``n`` distinct feasible points (index, config), drawn uniformly with a fixed seed."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(self.size) if self.size <= 1 << 22 else rng.integers(0, self.size, 4 * n)
        out, seen = [], set()
        for i in order:
            i = int(i)
            if i in seen:
                continue
            seen.add(i)
            try:
                cfg = self.config(i)
            except ConfigError:
                continue
            if self.feasible(cfg):
                out.append((i, cfg))
                if len(out) == n:
                    break
        return out
