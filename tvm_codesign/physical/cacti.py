"""Live CACTI 7: build the binary that ships inside ``zigzag-dse`` in a temporary directory and run SRAM points.

Only the generator of the committed table (``python -m tvm_codesign.physical.cacti``) and the test that checks
sampled table entries against a live run use this module; the cost model reads the table (``sram.py``) and
needs no compiler.

The input file is ZigZag's own CACTI configuration (``zigzag.cacti.cacti_master.cacti_config_creator``:
ITRS-HP cells and periphery, 360 K, cycle-time objective, block = port width), so the figures equal what ZigZag
(the peer cost model) charges for the same memory: e.g. 45 nm, 256 KiB with a 2048-bit port, one read and one
write port: 606.3 pJ per read, 1166 pJ per write, 2.858 mm^2. Build: ``make opt`` (the default ``dbg`` target
does not link on this toolchain), about 10 s on two cores. One point runs in 0.05-1 s.

Regenerate the table (all grid points of every node, about 2 minutes on two cores)::

    python -m tvm_codesign.physical.cacti [--out tvm_codesign/physical/data/cacti_sram.csv] [--jobs 2]
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# the grid of the committed table: every power of two in these ranges, and these nodes (nm)
NODES_NM = (45, 32, 65)
CAPACITY_LOG2 = (9, 20)     # 512 B .. 1 MiB
WIDTH_LOG2 = (4, 13)        # 16 .. 8192 bits per access
COLUMNS = ("node_nm", "capacity_bytes", "width_bits", "read_pj", "write_pj", "area_mm2", "leakage_mw",
           "cycle_ns", "access_ns")


class CactiError(RuntimeError):
    """CACTI cannot be built or run here (no zigzag-dse, no C++ compiler, or CACTI rejected the point)."""


def source_dir() -> Path:
    """The CACTI 7 sources shipped by zigzag-dse (CactiError if zigzag-dse is not installed)."""
    try:
        import zigzag.cacti.cacti_master as cm
    except ImportError as e:
        raise CactiError(f"zigzag-dse is not installed ({e}); `pip install zigzag-dse six`") from None
    return Path(cm.__path__[0])


def build(workdir: str | os.PathLike) -> Path:
    """Copy CACTI's sources into ``workdir``, ``make opt`` there; returns the directory holding ``./cacti``."""
    src, dst = source_dir(), Path(workdir) / "cacti_master"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("cacti", "obj_*", "self_gen", "__pycache__", "*.out"))
    r = subprocess.run(["make", "opt", f"-j{os.cpu_count() or 1}"], cwd=dst, capture_output=True, text=True)
    if r.returncode != 0 or not (dst / "cacti").exists():
        raise CactiError(f"building CACTI failed (make opt in {dst}):\n{r.stderr[-2000:]}")
    return dst


def run_point(cacti_dir: str | os.PathLike, capacity_bytes: int, width_bits: int, node_nm: int,
              read_ports: int = 1, write_ports: int = 1) -> dict | None:
    """One SRAM through CACTI: energies in pJ per access, area mm^2, leakage mW, cycle/access ns.
    None if CACTI finds no organisation for it (e.g. fewer rows than its smallest subarray)."""
    from zigzag.cacti.cacti_master.cacti_config_creator import CactiConfig
    d = Path(cacti_dir)
    cfg = CactiConfig()
    vals = {"mem_type": '"ram"', "cache_size": capacity_bytes, "IO_bus_width": width_bits, "line_size": width_bits // 8,
            "ex_rd_port": read_ports, "ex_wr_port": write_ports, "rd_wr_port": 0, "bank_count": 1,
            "technology": node_nm / 1000}
    lines = [opt["string"] + str(vals.get(k, opt["default"])) + "\n" for k, opt in cfg.config_options.items()]
    (d / "points").mkdir(exist_ok=True)
    name = f"points/sram_{node_nm}_{capacity_bytes}_{width_bits}_{read_ports}{write_ports}.cfg"
    cfg.write_config(lines, str(d / name))
    out = d / (name + ".out")
    out.unlink(missing_ok=True)
    subprocess.run(["./cacti", "-infile", name], cwd=d, capture_output=True, text=True, timeout=300)
    if not out.exists():
        return None
    rows = list(csv.reader(out.open()))
    row = dict(zip((h.strip() for h in rows[0]), (v.strip() for v in rows[-1])))
    try:
        return {"node_nm": node_nm, "capacity_bytes": capacity_bytes, "width_bits": width_bits,
                "read_pj": float(row["Dynamic read energy (nJ)"]) * 1e3,
                "write_pj": float(row["Dynamic write energy (nJ)"]) * 1e3,
                "area_mm2": float(row["Area (mm2)"]), "leakage_mw": float(row["Standby leakage per bank(mW)"]),
                "cycle_ns": float(row["Random cycle time (ns)"]), "access_ns": float(row["Access time (ns)"])}
    except (KeyError, ValueError):
        return None


def grid() -> list[tuple[int, int, int]]:
    """(node_nm, capacity_bytes, width_bits) of every table entry; a port wider than the memory is skipped."""
    return [(n, 1 << c, 1 << w) for n in NODES_NM for c in range(CAPACITY_LOG2[0], CAPACITY_LOG2[1] + 1)
            for w in range(WIDTH_LOG2[0], WIDTH_LOG2[1] + 1) if (1 << w) <= 8 * (1 << c)]


def generate(out: str | os.PathLike, jobs: int = 2) -> tuple[int, int]:
    """Build CACTI in a temp dir, run the whole grid, write the CSV table; (entries written, points CACTI refused)."""
    with tempfile.TemporaryDirectory(prefix="cacti_") as tmp:
        d = build(tmp)
        with ThreadPoolExecutor(jobs) as ex:
            res = list(ex.map(lambda p: run_point(d, p[1], p[2], p[0]), grid()))
    rows = [r for r in res if r is not None]
    with open(out, "w", newline="") as f:
        f.write("# CACTI 7 (zigzag-dse's sources and configuration), 1 read + 1 write port, 1 bank; "
                "regenerate: python -m tvm_codesign.physical.cacti\n")
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return len(rows), len(res) - len(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "data" / "cacti_sram.csv"))
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    import time
    t = time.perf_counter()
    n, refused = generate(a.out, a.jobs)
    print(f"{n} entries written to {a.out} ({refused} points CACTI refused) in {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
