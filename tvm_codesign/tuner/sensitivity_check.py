"""Check ``sensitivity.estimate`` against real measurements: random mixed assignments, each scored three ways.

For each assignment: the estimate (sum of per-layer drops), the fake-quantised torch drop of the whole
assignment, and the real drop through the bit-exact simulator (``compile(precision=, sparsity=)``), all in
top-1 points against all-w8a8 measured the same way, on a held-out split distinct from the sensitivity split.
"""
from __future__ import annotations

import time

import numpy as np

from .precision_run import compile_options
from .sensitivity import QUANT_MODES, W8A8, FakeQuant, Sensitivity, estimate


def random_assignments(layers: list[str], n: int, seed: int = 0, modes=QUANT_MODES, p_int8: float = 0.0) -> list[dict]:
    """``n`` assignments, each layer w8a8 with probability ``p_int8``, else at a uniformly drawn mode (a
    ``matmul_i``, two activations, only among the dense modes: it has no weight to prune)."""
    rng = np.random.default_rng(seed)
    dense = [m for m in modes if not m.sparse]
    pool = lambda l: dense if l.startswith("matmul") else modes
    return [{l: W8A8 if rng.random() < p_int8 else pool(l)[int(rng.integers(len(pool(l))))] for l in layers}
            for _ in range(n)]


def simulator_top1(model, calib_x, x, y, assignment: dict, target="vta_default") -> float:
    """Top-1 (percent) of the compiled model on (x, y), run through the simulator in batches of len(calib_x)."""
    import tvm_codesign as tc
    cm = tc.compile(model, target, calibration=[(calib_x,)], progress=False,
                    **compile_options(assignment, weight_scales=None))  # per channel, as the estimate models
    b = len(calib_x)
    if len(x) % b:
        raise ValueError(f"held-out split ({len(x)}) must be a multiple of the calibration batch ({b})")
    out = np.concatenate([cm(x[i:i + b]) for i in range(0, len(x), b)])
    return 100.0 * float((out.argmax(1) == y).mean())


def validate(model, sens: Sensitivity, calib_x, x, y, assignments: list[dict], simulator: bool = True,
             fq: FakeQuant | None = None) -> dict:
    """Per assignment: estimate, fake-quant drop and simulator drop (points vs all-w8a8), and their agreement."""
    fq = fq or FakeQuant(model, calib_x)
    top1 = lambda a: 100.0 * float((fq.logits(x, a).argmax(1).numpy() == y).mean())
    base = {n: W8A8 for n in fq.names}
    fq_base = top1(base)
    sim_base = simulator_top1(model, calib_x, x, y, base) if simulator else None
    rows = []
    for a in assignments:
        t0 = time.perf_counter()
        r = {"assignment": {n: m.name or "w8a8" for n, m in a.items()}, "estimate": estimate(sens, a),
             "fake_quant": fq_base - top1(a)}
        if simulator:
            r["simulator"] = sim_base - simulator_top1(model, calib_x, x, y, a)
        r["seconds"] = time.perf_counter() - t0
        rows.append(r)
    out = {"fake_quant_int8_top1": fq_base, "simulator_int8_top1": sim_base, "rows": rows}
    est = np.array([r["estimate"] for r in rows])
    for k in ("fake_quant",) + (("simulator",) if simulator else ()):
        v = np.array([r[k] for r in rows])
        out[f"mae_vs_{k}"] = float(np.abs(est - v).mean())
        out[f"pearson_vs_{k}"] = float(np.corrcoef(est, v)[0, 1]) if est.std() and v.std() else None
        out[f"spearman_vs_{k}"] = _spearman(est, v)
    if simulator:
        f, s = np.array([r["fake_quant"] for r in rows]), np.array([r["simulator"] for r in rows])
        out["mae_fake_quant_vs_simulator"] = float(np.abs(f - s).mean())
        out["pearson_fake_quant_vs_simulator"] = float(np.corrcoef(f, s)[0, 1]) if f.std() and s.std() else None
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import spearmanr
    return float(spearmanr(a, b).statistic) if a.std() and b.std() else None
