"""ZigZag's inputs for one of our configs: the accelerator, mapping and workload YAML of the peer model
(benchmarks/peer_zigzag.py), so ZigZag evaluates the same core on the same layers.

ZigZag (KU Leuven, ``zigzag-dse``: L. Mei et al., "ZigZag: Enlarging Joint Architecture-Mapping Design Space
Exploration for DNN Accelerators", IEEE Trans. Computers 2021) takes an operational array, a memory hierarchy
with per-access costs, and a layer; it searches temporal mappings (LOMA) and returns latency in cycles and
energy. The equivalent of an ``AcceleratorConfig``:

- operational array: ``block_out x block_in x batch`` MACs (D1 = K, D2 = C, D3 = B, the spatial mapping
  fixed to exactly that, as our GEMM core unrolls it), ``unit_energy`` = our model's energy of one MAC at the
  config's precisions (an input both models share, so the comparison is of the models, not of the MAC);
- one SRAM per operand, the sizes of the config's buffers, each serving the whole array, with the port our
  GEMM core reads every cycle: inp ``batch*block_in*inp_bits``, wgt ``block_in*block_out*wgt_bits`` and acc
  ``batch*block_out*acc_bits`` bits (outputs are partial sums in acc_bits, stored as ``out_bits``); read and
  write energy per access and area from live CACTI 7 runs (``cacti_sram``: 1 read + 1 write port per bank, the
  config's node) through the CACTI that ships inside zigzag-dse. A buffer is built from banks as our physical
  model builds it (``tvm_codesign.physical.sram.banking``), an access costing every bank once, and dynamic
  energies are scaled to the config's supply voltage as ours are ((V / V_nominal)^2 from
  ``tvm_codesign.physical.costs``): the same memories at the same operating point;
- DRAM shared by the three operands with one read/write port of ``dram_bandwidth`` bytes per cycle, its energy
  per access our model's DRAM read / write energy per byte times the port width (ZigZag charges per word).

Not modelled on the ZigZag side (what the comparison measures): the micro-op SRAM and instruction stream,
per-instruction and per-DMA overheads, the DRAM latency, the ALU epilogue, leakage (peer_zigzag.py adds the
architecture's static power over ZigZag's latency to its total).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import yaml

def sram_ports(cfg) -> dict:
    """Per ZigZag memory: (size in bits, port width in bits) of the config's input, weight and accumulator SRAM."""
    return {"inp_sram": (cfg.inp_buffer_bytes * 8, cfg.batch * cfg.block_in * cfg.inp_bits),
            "wgt_sram": (cfg.wgt_buffer_bytes * 8, cfg.block_in * cfg.block_out * cfg.wgt_bits),
            "acc_sram": (cfg.acc_buffer_bytes * 8, cfg.batch * cfg.block_out * cfg.acc_bits)}


# ----- CACTI ---------------------------------------------------------------------------------------------
def _cacti_dir() -> Path:
    """A private CACTI working directory (its ``self_gen/`` is wiped on every run, so sharing the package's would
    race with other users): the binary and technology files linked in, the cost cache (pool) beside them."""
    from zigzag.cacti import cacti_parser
    master = Path(cacti_parser.__file__).parent / "cacti_master"
    d = Path(os.environ.get("TVM_CODESIGN_CACTI_DIR",
                            Path(os.environ.get("TMPDIR", "/tmp")) / f"tvm_codesign_cacti_{os.getuid()}"))
    d.mkdir(parents=True, exist_ok=True)
    if not (master / "cacti").is_file():  # not built in the package: build a private copy once (about 10 s)
        if not (d / "cacti_master" / "cacti").is_file():
            import tempfile

            from tvm_codesign.physical import cacti
            tmp = Path(tempfile.mkdtemp(dir=d))
            try:  # built aside, then renamed in: a concurrent builder never sees a half-built copy
                os.rename(cacti.build(tmp), d / "cacti_master")
            except OSError:
                if not (d / "cacti_master" / "cacti").is_file():
                    raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        master = d / "cacti_master"
    for name in ("cacti", "tech_params", "contention.dat"):
        link = d / name
        if (master / name).exists() and not link.exists():
            link.symlink_to(master / name)
    pool = d / "pool.yaml"
    if not pool.exists():
        pool.write_text("")  # empty: the wrapper appends entries (a "{}" line would make it invalid YAML)
    return d


def cacti_sram(size_bits: int, width_bits: int, node: float) -> tuple[float, float, float]:
    """(read pJ, write pJ, area mm^2) of one access of ``width_bits`` to an SRAM of ``size_bits``, 1 read and 1
    write port, 1 bank, at ``node`` nm: CACTI 7 through zigzag-dse's wrapper (cached; about 2 s a new point)."""
    from zigzag.cacti.cacti_parser import CactiParser
    d = _cacti_dir()
    env_path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env_path  # its helper runs `python`
    try:
        with open(os.devnull, "w") as null:
            fd = os.dup(1)
            os.dup2(null.fileno(), 1)  # CACTI prints a report on every run
            try:
                r, w, a = CactiParser().get_item(mem_name="sram", mem_type="sram", size=int(size_bits),
                                                 r_bw=int(width_bits), r_port=1, w_port=1, rw_port=0, bank=1,
                                                 technology=node / 1000, mem_pool_path=str(d / "pool.yaml"))
            finally:
                os.dup2(fd, 1)
                os.close(fd)
    finally:
        os.environ["PATH"] = env_path
    return float(r), float(w), float(a)


def banking(cfg, mem: str) -> tuple[int, int, int]:
    """(banks, bank bits, bank port bits) of a ZigZag memory: our physical model's banking (VTA's)."""
    from tvm_codesign.physical import sram as phys_sram
    n, bank_bytes, bank_bits = phys_sram.banking(cfg, mem.split("_")[0])
    return int(n), int(bank_bytes) * 8, int(bank_bits)


def dynamic_scale(cfg) -> float:
    """(V / V_nominal)^2 of the config's operating point in our physical model."""
    from tvm_codesign import physical
    c = physical.costs(cfg)
    return (c["vdd"] / c["vdd_nominal"]) ** 2


def sram_costs(cfg) -> dict:
    """CACTI costs of the config's three SRAMs: {memory: (read pJ, write pJ, area mm^2)} per whole-port access,
    every bank read or written once, at the config's supply."""
    nm, v2 = float(cfg.tech_nm), dynamic_scale(cfg)
    out = {}
    for m in sram_ports(cfg):
        n, bank_bits, port_bits = banking(cfg, m)
        r, w, a = cacti_sram(bank_bits, port_bits, nm)
        out[m] = (n * r * v2, n * w * v2, n * a)
    return out


# ----- YAML ----------------------------------------------------------------------------------------------
def _dims(cfg) -> list[tuple[str, str, int]]:
    """(array dimension, layer dimension, size) of the GEMM core; a batch of 1 adds no dimension."""
    d = [("D1", "K", cfg.block_out), ("D2", "C", cfg.block_in)]
    return d + [("D3", "B", cfg.batch)] if cfg.batch > 1 else d


def _port(name: str, kind: str, bw: int, alloc: list[str]) -> dict:
    return {"name": name, "type": kind, "bandwidth_min": int(bw), "bandwidth_max": int(bw), "allocation": alloc}


def accelerator(cfg, costs: dict, mac_pj: float, dram_pj_per_byte, dram_write_pj_per_byte=None) -> dict:
    """ZigZag's accelerator description of ``cfg`` (a dict to dump as YAML). ``costs``: ``sram_costs(cfg)``;
    DRAM energy per byte read (and written: the same if not given)."""
    if set(costs) != set(sram_ports(cfg)):
        raise ValueError(f"costs must give {sorted(sram_ports(cfg))}, got {sorted(costs)}")
    dims = [d for d, _, _ in _dims(cfg)]
    mems = {}
    for m, (size, width) in sram_ports(cfg).items():
        r, w, a = costs[m]
        op = {"inp_sram": "I1", "wgt_sram": "I2", "acc_sram": "O"}[m]
        if op == "O":  # partial sums read and written by the array, outputs read out to DRAM
            ports = [_port("r_port_1", "read", width, ["O, tl", "O, th"]),
                     _port("w_port_1", "write", width, ["O, fl", "O, fh"])]
        else:
            ports = [_port("r_port_1", "read", width, [f"{op}, tl"]), _port("w_port_1", "write", width, [f"{op}, fh"])]
        mems[m] = {"size": int(size), "r_cost": r, "w_cost": w, "area": a, "latency": 1, "operands": [op],
                   "ports": ports, "served_dimensions": dims}
    bw_bits = int(round(cfg.dram_bandwidth * 8))
    if bw_bits < 1 or abs(cfg.dram_bandwidth * 8 - bw_bits) > 1e-9:
        raise ValueError(f"dram_bandwidth {cfg.dram_bandwidth} B/cycle must be a whole number of bits per cycle "
                         "for ZigZag's DRAM port")
    wr = dram_pj_per_byte if dram_write_pj_per_byte is None else dram_write_pj_per_byte
    mems["dram"] = {"size": 1 << 40, "r_cost": dram_pj_per_byte * bw_bits / 8, "w_cost": wr * bw_bits / 8,
                    "area": 0.0, "latency": 1,
                    "operands": ["I1", "I2", "O"],
                    "ports": [_port("rw_port_1", "read_write", bw_bits,
                                    ["I1, fh", "I1, tl", "I2, fh", "I2, tl", "O, fh", "O, tl", "O, fl", "O, th"])],
                    "served_dimensions": dims}
    return {"name": f"vta_{cfg.key}", "memories": mems,
            "operational_array": {"unit_energy": float(mac_pj), "unit_area": 1.0, "dimensions": dims,
                                  "sizes": [s for _, _, s in _dims(cfg)]}}


def mapping(cfg) -> list[dict]:
    """The spatial mapping of our GEMM core for every layer (ZigZag searches only the temporal mapping)."""
    return [{"name": "default", "spatial_mapping": {d: [f"{ld}, {s}"] for d, ld, s in _dims(cfg)},
             "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}]


def layer(wl, cfg, layer_id: int = 0) -> dict:
    """ZigZag's layer for the kernel a Workload runs: a (grouped) conv, dense and batch matmul as a 1x1 conv on a
    1x1 image. Channels and batch as the kernel pads them to the GEMM block (what both models execute)."""
    up = lambda v, b: -(-v // b) * b
    groups = wl.kernel_groups if wl.kind == "conv2d" else wl.groups
    k = up(wl.co * wl.merge, cfg.block_out)
    c = up(wl.ci * wl.merge, cfg.block_in)
    b = up(wl.n, cfg.batch)
    prec = {"W": cfg.wgt_bits, "I": cfg.inp_bits, "O": cfg.acc_bits,
            "O_final": cfg.out_bits if wl.out_dtype == "int8" else cfg.acc_bits}
    (sh, sw), (ph, pw) = wl.stride, wl.pad
    return {"id": layer_id, "name": wl.name or f"L{layer_id}", "operator_type": "Conv",
            "equation": "O[b][g][k][oy][ox]+=W[g][k][c][fy][fx]*I[b][g][c][iy][ix]",
            "dimension_relations": [f"ix={sw}*ox+1*fx", f"iy={sh}*oy+1*fy"],
            "loop_dims": ["B", "K", "G", "OX", "OY", "C", "FX", "FY"],
            "loop_sizes": [b, k, groups, wl.ow, wl.oh, c, wl.kw, wl.kh],
            "operand_precision": prec, "operand_source": {"W": layer_id, "I": layer_id},
            "pr_loop_dims": ["IX", "IY"], "pr_loop_sizes": [wl.w, wl.h], "padding": [[pw, pw], [ph, ph]]}


def write(directory, cfg, costs: dict, mac_pj: float, dram_pj_per_byte, dram_write_pj_per_byte=None) -> tuple[str, str]:
    """Write accelerator.yaml and mapping.yaml for ``cfg`` into ``directory``: (accelerator path, mapping path)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    acc, mp = d / "accelerator.yaml", d / "mapping.yaml"
    acc.write_text(yaml.safe_dump(accelerator(cfg, costs, mac_pj, dram_pj_per_byte, dram_write_pj_per_byte),
                                  sort_keys=False))
    mp.write_text(yaml.safe_dump(mapping(cfg), sort_keys=False))
    return str(acc), str(mp)
