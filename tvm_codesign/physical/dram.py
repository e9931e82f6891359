"""DRAM interfaces as named parts: channel width and data rate, energy per bit, PHY area, background power.

Device figures come from datasheet currents (IDD, mA) and supplies, with Micron's method (TN-41-01 "Calculating
Memory System Power for DDR3"; DRAMsim3 and DRAMPower compute the same): per bit of a burst
(IDD4R - IDD3N) * VDD / (data rate * width) (IDD4W for writes); per activation
(IDD0 * tRC - IDD3N * tRAS - IDD2N * tRP) * VDD, spread over the page it opens (the DMA streams whole rows, so
one activation per page: a lower bound for scattered rows); background IDD3N * VDD (active standby: the device
stays open for the run) plus refresh (IDD5 - IDD3N) * VDD * tRFC / tREFI. A channel delivers its pin rate less
the refresh time (tRFC / tREFI).

- [DS3-DDR3] DRAMsim3 ``configs/DDR3_4Gb_x16_1600.ini`` (Micron 4 Gb x16 DDR3L-1600): VDD 1.35 V, IDD0 66,
  IDD2N 32, IDD3N 47, IDD4R 235, IDD4W 171, IDD5 235 mA; tCK 1.25 ns, tRAS 28, tRP 11, tRFC 208, tREFI 6240
  cycles; 1024 columns x 16 bit pages.
- [DS3-DDR4] DRAMsim3 ``configs/DDR4_8Gb_x16_3200.ini`` (Micron 8 Gb x16 DDR4-3200): VDD 1.2 V, IDD0 95,
  IDD2N 37, IDD3N 56, IDD4R 302, IDD4W 278, IDD5 280 mA; tCK 0.63 ns, tRAS 52, tRP 22, tRFC 560, tREFI 12480;
  1024 x 16 bit pages (the VPP activation current, 4 mA at 2.5 V, is left out).
- [DP-LP4] DRAMPower ``memspecs/MICRON_6Gb_LPDDR4-3200_32bit_A.json``, one 16-bit channel: VDD1 1.8 V / VDD2
  1.1 V currents IDD0 3.5 / 45, IDD2N 2.0 / 27, IDD3N 2.25 / 30, IDD4R 2.25 / 275, IDD4W 2.25 / 210, IDD3NQ 0.75 mA
  on VDDQ 1.1 V; clock 1600 MHz, RAS 68, RPpb 29, RFCab 448, REFIab 6246 cycles; 1024 x 16 bit pages. VDDQ's
  read current (I/O drive) is left out, as the DDR3/DDR4 currents exclude I/O: I/O is the PHY's term below.
- [McPAT] S. Li et al., "McPAT", MICRO 2009 (memory-controller PHY model, ``memoryctrl.cc``): a Synopsys
  DesignWare 16-bit DDR3 PHY is 1.3 mm^2 with its I/Os at 40 nm, 20 % of it logic (scales with F^2), 80 % I/O (does
  not); PHY energy 10 mW per Gb/s at 90 nm (from a 100 mW 9.6 Gb/s 90 nm memory transceiver, ISSCC 2006), scaled
  with F: 5 pJ/bit at 45 nm. Used for DDR3 and DDR4.
- [K18] M. Kim et al., "A 4266 Mb/s/pin LPDDR4 interface ...", IEEE TCAS-II 65(12), 2018, 65 nm controller PHY:
  1.83 pJ/bit read, 5.68 pJ/bit write; scaled with F as McPAT does. Area as [McPAT] per 16 DQ.

HBM2 is not listed: no published PHY area was found to price it, and every demand of the shipped spaces
(at most 32 B/cycle x 333 MHz) is met by the parts below.

Choice: a config's demand is dram_bandwidth (B/cycle) x clock. With ``dram_interface`` empty (every preset) the
interface is derived: the cheapest listed part that delivers the demand, cheapest = least power when streaming at
the demand (background + demand x energy per bit, device and PHY; ties: less PHY area). A named ``dram_interface``
pins the part; either way the part's energy, PHY area and background power are charged, and a demand that no
listed part (or the pinned one) delivers makes the config infeasible (``DramError``).
"""
from __future__ import annotations

from dataclasses import dataclass


class DramError(ValueError):
    """No listed DRAM interface delivers a config's bandwidth x clock."""


@dataclass(frozen=True)
class Device:
    """One datasheet device (or LPDDR4 channel): per-bit energies in pJ, background mW, delivered GB/s."""
    standard: str
    width: int
    mts: float
    read_pj_bit: float
    write_pj_bit: float
    act_pj_bit: float
    background_mw: float
    delivered_gbs: float
    phy: str             # which PHY figures: "ddr" [McPAT] or "lpddr4" [K18]


def _device(standard, width, mts, vdd_ma: list, tck_ns, ras, rp, rfc, refi, page_bits, phy) -> Device:
    """Per-rail currents (VDD, IDD0, IDD2N, IDD3N, IDD4R, IDD4W, IDD5) -> Device (Micron TN-41-01 method)."""
    gbps = mts * width / 1e3                                   # Gb/s
    rd = sum(v * (i4r - i3n) for v, i0, i2n, i3n, i4r, i4w, i5 in vdd_ma) / gbps
    wr = sum(v * (i4w - i3n) for v, i0, i2n, i3n, i4r, i4w, i5 in vdd_ma) / gbps
    trc, tras, trp = (ras + rp) * tck_ns, ras * tck_ns, rp * tck_ns
    act = sum(v * (i0 * trc - i3n * tras - i2n * trp) for v, i0, i2n, i3n, i4r, i4w, i5 in vdd_ma) / page_bits
    bg = sum(v * (i3n + (i5 - i3n) * rfc / refi) for v, i0, i2n, i3n, i4r, i4w, i5 in vdd_ma)
    return Device(standard, width, mts, rd, wr, act, bg, gbps / 8 * (1 - rfc / refi), phy)


DDR3_1600 = _device("DDR3-1600", 16, 1600, [(1.35, 66, 32, 47, 235, 171, 235)], 1.25, 28, 11, 208, 6240, 16384, "ddr")
DDR4_3200 = _device("DDR4-3200", 16, 3200, [(1.2, 95, 37, 56, 302, 278, 280)], 0.625, 52, 22, 560, 12480, 16384, "ddr")
LPDDR4_3200 = _device("LPDDR4-3200", 16, 3200, [(1.8, 3.5, 2.0, 2.25, 2.25, 2.25, 2.5), (1.1, 45, 27, 30, 275, 210, 30),
                                                 (1.1, 0, 0, 0.75, 0.75, 0.75, 0.75)],
                      0.625, 68, 29, 448, 6246, 16384, "lpddr4")

PHY_MM2_PER_16DQ_40NM = 1.3       # [McPAT]
PHY_LOGIC_SHARE = 0.2             # [McPAT]
PHY_PJ_BIT = {"ddr": (10.0, 10.0, 90), "lpddr4": (1.83, 5.68, 65)}   # (read, write, at node nm) [McPAT, K18]


@dataclass(frozen=True)
class Interface:
    name: str
    device: Device
    devices: int

    @property
    def width(self) -> int:
        return self.device.width * self.devices

    @property
    def delivered_gbs(self) -> float:
        return self.device.delivered_gbs * self.devices

    @property
    def background_mw(self) -> float:
        return self.device.background_mw * self.devices

    def phy_area_mm2(self, nm: int) -> float:
        s = (nm / 40) ** 2
        return PHY_MM2_PER_16DQ_40NM * ((1 - PHY_LOGIC_SHARE) + PHY_LOGIC_SHARE * s) * self.width / 16

    def pj_per_byte(self, nm: int) -> tuple[float, float]:
        """(read, write) energy per byte: device burst + activation share + PHY I/O."""
        d, (pr, pw, at) = self.device, PHY_PJ_BIT[self.device.phy]
        return (8 * (d.read_pj_bit + d.act_pj_bit + pr * nm / at), 8 * (d.write_pj_bit + d.act_pj_bit + pw * nm / at))

    def streaming_mw(self, gbs: float, nm: int) -> float:
        """Power when streaming ``gbs`` GB/s (half reads, half writes): background + dynamic."""
        r, w = self.pj_per_byte(nm)
        return self.background_mw + gbs * (r + w) / 2


INTERFACES = {i.name: i for i in (
    Interface("DDR3-1600 x16", DDR3_1600, 1), Interface("DDR3-1600 x32", DDR3_1600, 2),
    Interface("DDR3-1600 x64", DDR3_1600, 4), Interface("DDR4-3200 x16", DDR4_3200, 1),
    Interface("DDR4-3200 x32", DDR4_3200, 2), Interface("DDR4-3200 x64", DDR4_3200, 4),
    Interface("LPDDR4-3200 x16", LPDDR4_3200, 1), Interface("LPDDR4-3200 x32", LPDDR4_3200, 2),
    Interface("LPDDR4-3200 x64", LPDDR4_3200, 4))}


def demand_gbs(cfg) -> float:
    """The accelerator port's bandwidth: dram_bandwidth B/cycle x clock, GB/s."""
    return cfg.dram_bandwidth * cfg.clock_mhz / 1e3


def choose(cfg, nm: int) -> Interface:
    """The config's interface: its pinned ``dram_interface``, else the cheapest that delivers the demand."""
    need = demand_gbs(cfg)
    pinned = getattr(cfg, "dram_interface", "")
    if pinned:
        if pinned not in INTERFACES:
            raise DramError(f"dram_interface {pinned!r} is not a listed part; known: {sorted(INTERFACES)}")
        i = INTERFACES[pinned]
        if i.delivered_gbs < need:
            raise DramError(f"dram_interface {pinned} delivers {i.delivered_gbs:.2f} GB/s, below the demand "
                            f"{need:.2f} GB/s = dram_bandwidth {cfg.dram_bandwidth:g} B/cycle x {cfg.clock_mhz:g} MHz")
        return i
    ok = [i for i in INTERFACES.values() if i.delivered_gbs >= need]
    if not ok:
        best = max(INTERFACES.values(), key=lambda i: i.delivered_gbs)
        raise DramError(f"dram_bandwidth {cfg.dram_bandwidth:g} B/cycle x {cfg.clock_mhz:g} MHz = {need:.2f} GB/s: no "
                        f"listed DRAM interface delivers it (the best, {best.name}, delivers {best.delivered_gbs:.2f} GB/s)")
    return min(ok, key=lambda i: (i.streaming_mw(need, nm), i.phy_area_mm2(nm)))
