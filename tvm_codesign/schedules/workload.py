"""Workload: one accelerator operator (conv2d, dense, batch matmul) with its int8 epilogue.

All three are one packed "grouped GEMM-conv":
``out[g, n, co, y, x] = sum_{ci, kh, kw} data[g, n, ci, y*sh + kh - ph, x*sw + kw - pw] * w[g, co, ci, kh, kw]``
Dense is a 1x1 conv on a 1x1 image with batch M; batch matmul adds the group axis g; a grouped conv2d
(``groups`` G, ``ci`` / ``co`` channels per group) is G of them on consecutive channel ranges. ``merge`` k
packs k consecutive groups into one kernel group with a block-diagonal weight (schedules/groups.py): the
kernel runs ceil(G/k) groups of k*ci -> k*co channels, zeros between the groups included. The epilogue runs
on the ALU: + bias[co], then (with ``shift``) round half up and arithmetic shift right, then clip to
[lo, hi] (relu raises lo to 0), then the store narrows to ``out_dtype``. With a ``multiplier`` M (integer
requantisation) the stages are + bias, * M, then a floor shift: the caller folds rounding into the bias.
M is one int (an ALU immediate) or ``"channel"``: one int32 per output channel, a vector loaded into the
accumulator SRAM beside the bias and multiplied as a register operand (per-channel weight scales).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import CodesignError


class WorkloadError(CodesignError, ValueError):
    """A workload the accelerator cannot run, naming the field."""


CHANNEL = "channel"  # Workload.multiplier: one int32 multiplier per output channel (a register operand)


@dataclass(frozen=True)
class Workload:
    kind: str                 # conv2d | dense | batch_matmul
    n: int                    # batch (conv) or rows M (dense / batch matmul)
    ci: int                   # input channels / K
    co: int                   # output channels / N
    h: int = 1
    w: int = 1
    kh: int = 1
    kw: int = 1
    stride: tuple = (1, 1)
    pad: tuple = (0, 0)
    groups: int = 1           # batch-matmul batch; conv2d groups (ci, co are per group)
    merge: int = 1            # conv2d groups per kernel group (block-diagonal weight; schedules/groups.py)
    bias: bool = False
    shift: int | None = None  # requantise: round half up, >> shift
    multiplier: int | str | None = None  # requantise: * M before a floor >> shift: an int (ALU immediate) or
    #                                      "channel" (an int32 per output channel, a register operand)
    relu: bool = False
    clip: tuple | None = None  # (lo, hi) before the store, either may be None; int8 outputs default to
    out_dtype: str = "int32"   # (-128, 127) unless saturate=False (then the store truncates)
    saturate: bool = True
    name: str = ""

    def __post_init__(self):
        for f in ("n", "ci", "co", "h", "w", "kh", "kw", "groups", "merge"):
            v = getattr(self, f)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise WorkloadError(f"{f} must be a positive integer, got {v!r}")
        object.__setattr__(self, "stride", tuple(int(s) for s in self.stride))
        object.__setattr__(self, "pad", tuple(int(p) for p in self.pad))
        if len(self.stride) != 2 or min(self.stride) < 1:
            raise WorkloadError(f"stride must be two integers >= 1, got {self.stride}")
        if len(self.pad) != 2 or min(self.pad) < 0:
            raise WorkloadError(f"pad must be two integers >= 0, got {self.pad}")
        if self.kind not in ("conv2d", "dense", "batch_matmul"):
            raise WorkloadError(f"kind must be conv2d, dense or batch_matmul, got {self.kind!r}")
        if self.merge > 1 and (self.kind != "conv2d" or self.merge > self.groups):
            raise WorkloadError(f"merge {self.merge} needs a conv2d with at least that many groups "
                                f"({self.kind}, groups {self.groups})")
        if self.out_dtype not in ("int8", "int32"):
            raise WorkloadError(f"out_dtype must be int8 or int32, got {self.out_dtype!r}")
        if self.oh < 1 or self.ow < 1:
            raise WorkloadError(f"kernel {self.kh}x{self.kw} larger than padded input {self.h}x{self.w}")
        if self.shift is not None and not 0 <= self.shift <= 31:
            raise WorkloadError(f"shift must be in [0, 31], got {self.shift}")
        if self.multiplier is not None and self.multiplier != CHANNEL and (
                not isinstance(self.multiplier, (int, np.integer)) or self.multiplier < 1):
            raise WorkloadError(f"multiplier must be a positive integer or {CHANNEL!r} (one per output channel), "
                                f"got {self.multiplier!r}")
        if self.out_dtype == "int8" and self.clip is None and self.saturate:
            object.__setattr__(self, "clip", (-128, 127))
        if self.clip is not None:
            lo, hi = (None if c is None else int(c) for c in self.clip)
            if lo is not None and hi is not None and lo > hi:
                raise WorkloadError(f"clip lower bound {lo} > upper bound {hi}")
            object.__setattr__(self, "clip", (lo, hi))

    # ----- constructors -----------------------------------------------------------------------
    @classmethod
    def conv2d(cls, n, ci, h, w, co, k, stride=1, pad=0, groups=1, **kw) -> "Workload":
        """NCHW x OIHW. ``ci`` / ``co`` are all channels, as in ``torch.nn.Conv2d``; with ``groups`` G both must
        divide by G (depthwise: groups = ci), and the fields hold the per-group counts."""
        kh, kw_ = (k, k) if np.isscalar(k) else k
        s = (stride, stride) if np.isscalar(stride) else stride
        p = (pad, pad) if np.isscalar(pad) else pad
        if not isinstance(groups, (int, np.integer)) or groups < 1 or ci % groups or co % groups:
            raise WorkloadError(f"groups {groups!r} must be a positive integer dividing ci {ci} and co {co}")
        return cls("conv2d", n, ci // groups, co // groups, h, w, kh, kw_, s, p, groups=groups, **kw)

    @classmethod
    def dense(cls, m, k, n, **kw) -> "Workload":
        """(m x k) . (n x k)^T."""
        return cls("dense", m, k, n, **kw)

    @classmethod
    def batch_matmul(cls, b, m, k, n, **kw) -> "Workload":
        """(b, m, k) . (b, n, k)^T."""
        return cls("batch_matmul", m, k, n, groups=b, **kw)

    # ----- derived ----------------------------------------------------------------------------
    @property
    def oh(self) -> int:
        return (self.h + 2 * self.pad[0] - self.kh) // self.stride[0] + 1

    @property
    def ow(self) -> int:
        return (self.w + 2 * self.pad[1] - self.kw) // self.stride[1] + 1

    @property
    def channels_in(self) -> int:
        """Input channels (K) of the user's tensor: all groups' for a conv2d."""
        return self.ci * self.groups if self.kind == "conv2d" else self.ci

    @property
    def channels_out(self) -> int:
        """Output channels (N) of the user's tensor and the bias length: all groups' for a conv2d."""
        return self.co * self.groups if self.kind == "conv2d" else self.co

    @property
    def kernel_groups(self) -> int:
        """Groups the kernel runs: ceil(groups / merge)."""
        return -(-self.groups // self.merge)

    @property
    def input_step(self) -> tuple[int, int]:
        """DRAM rows / columns between neighbouring rows / columns of a strided input tile (knob ``inp_tile``).

        An unpadded conv whose kernel is 1 wide in a strided dimension reads only every stride-th input
        there (a 1x1 stride-2 downsample reads a quarter of its input): a strided tile holds just those, and
        the step is the stride. (1, 1): no strided tile is possible, only a dense window.
        """
        if self.pad != (0, 0):
            return (1, 1)
        return tuple(s if k == 1 else 1 for s, k in zip(self.stride, (self.kh, self.kw)))

    @property
    def input_read(self) -> tuple[int, int]:
        """Input rows and columns a strided tile can reach: every ``input_step``-th one."""
        (qh, qw) = self.input_step
        return (self.h - 1) // qh + 1, (self.w - 1) // qw + 1

    def input_tile(self, tile_h, tile_w, strided: bool = False):
        """Rows and columns of the input tile behind ``tile_h x tile_w`` outputs (ints or numpy arrays):
        the dense window, or with ``strided`` only the rows / columns read (``input_step``)."""
        (sh, sw), (qh, qw) = self.stride, (self.input_step if strided else (1, 1))
        return (tile_h - 1) * (sh // qh) + self.kh, (tile_w - 1) * (sw // qw) + self.kw

    @property
    def macs(self) -> int:
        """Real multiply-accumulates (no channel padding, no zeros of a merged block-diagonal weight)."""
        return self.groups * self.n * self.co * self.oh * self.ow * self.ci * self.kh * self.kw

    @property
    def epilogue(self) -> list[tuple[str, int | None]]:
        """ALU stages after the GEMM: (op, immediate), or (op, None) for a register operand: ("add", None) the
        bias, ("mul", None) a per-channel multiplier (``vectors`` names them in order).

        With a bias, the rounding constant 2^(shift-1) is folded into the packed bias (one ALU pass less,
        exact: additions wrap identically in any order). A symmetric clip [-v-1, v] is one CLIP.
        """
        st = [("add", None)] if self.bias else []
        if self.multiplier == CHANNEL:
            st += [("mul", None)] + ([("shr", self.shift)] if self.shift else [])
        elif self.multiplier is not None:
            st += ([("mul", int(self.multiplier))] if self.multiplier != 1 else []) + \
                ([("shr", self.shift)] if self.shift else [])
        elif self.shift:
            if not self.bias:
                st.append(("add", 1 << (self.shift - 1)))
            st.append(("shr", self.shift))
        lo, hi = self.bounds
        if lo is not None and hi is not None and lo == -hi - 1:
            st.append(("clip", hi))
        else:
            st += ([("max", lo)] if lo is not None else []) + ([("min", hi)] if hi is not None else [])
        return st

    @property
    def vectors(self) -> tuple[str, ...]:
        """The per-channel int32 vectors the kernel loads into the accumulator SRAM, in parameter order (after
        data and weight): "bias", "multiplier" (each ``packed_shapes`` "bias"-shaped, one tile_co of SRAM)."""
        return (("bias",) if self.bias else ()) + (("multiplier",) if self.multiplier == CHANNEL else ())

    @property
    def bounds(self) -> tuple[int | None, int | None]:
        """(lo, hi) applied before the store: clip, with relu raising lo to 0."""
        lo, hi = self.clip if self.clip is not None else (None, None)
        if self.relu:
            lo = 0 if lo is None else max(lo, 0)
        return lo, hi

    @property
    def bias_offset(self) -> int:
        """Added to every bias value when packing (the folded rounding constant)."""
        return (1 << (self.shift - 1)) if self.bias and self.shift and self.multiplier is None else 0

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if self.kind == "conv2d":
            s = (f"conv2d n={self.n} {self.channels_in}->{self.channels_out} {self.h}x{self.w} k={self.kh}x{self.kw} "
                 f"s={self.stride[0]} p={self.pad[0]}")
            s += (f" groups={self.groups}" if self.groups > 1 else "") + \
                (f" merge={self.merge}" if self.merge > 1 else "")
        elif self.kind == "dense":
            s = f"dense {self.n}x{self.ci} . {self.co}x{self.ci}^T"
        else:
            s = f"batch_matmul {self.groups}x{self.n}x{self.ci} . {self.groups}x{self.co}x{self.ci}^T"
        return (self.name + ": " if self.name else "") + s

    # ----- numpy reference (unpacked layouts) ---------------------------------------------------
    def reference(self, data: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                  multiplier: np.ndarray | None = None) -> np.ndarray:
        """The documented semantics in numpy. conv2d: NCHW x OIHW -> NCHW (I: channels per group); dense:
        (M,K)x(N,K) -> (M,N); batch_matmul: (B,M,K)x(B,N,K) -> (B,M,N). Accumulation wraps at 32 bits.
        ``multiplier``: the int32 per output channel of a ``multiplier="channel"`` workload."""
        x, wt = data.astype(np.int64), weight.astype(np.int64)
        if self.kind == "conv2d":
            ph, pw = self.pad
            x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
            sh, sw = self.stride
            win = np.lib.stride_tricks.sliding_window_view(x, (self.kh, self.kw), axis=(2, 3))
            win = win[:, :, ::sh, ::sw][:, :, :self.oh, :self.ow]
            g = self.groups
            win = win.reshape(win.shape[0], g, self.ci, *win.shape[2:])
            acc = np.einsum("ngchwij,gocij->ngohw", win, wt.reshape(g, self.co, self.ci, self.kh, self.kw),
                            optimize=True)
            acc = acc.reshape(acc.shape[0], g * self.co, self.oh, self.ow)
            bshape = (1, -1, 1, 1)
        elif self.kind == "dense":
            acc, bshape = x @ wt.T, (1, -1)
        else:
            acc, bshape = np.einsum("bmk,bnk->bmn", x, wt), (1, 1, -1)
        wrap = lambda a: a.astype(np.int32).astype(np.int64)  # two's complement, like the hardware
        acc = wrap(acc)
        if self.bias:
            acc = wrap(acc + bias.astype(np.int64).reshape(bshape))
        if self.multiplier == CHANNEL and (multiplier is None or np.size(multiplier) != self.channels_out):
            raise WorkloadError(f"{self.describe()} multiplies by one int32 per output channel: pass multiplier "
                                f"of {self.channels_out} values")
        if self.multiplier is not None:
            m = np.asarray(multiplier, np.int64).reshape(bshape) if self.multiplier == CHANNEL else int(self.multiplier)
            acc = wrap(acc * m) >> (self.shift or 0)
        elif self.shift:
            acc = wrap(acc + (1 << (self.shift - 1))) >> self.shift
        lo, hi = self.bounds
        if lo is not None:
            acc = np.maximum(acc, lo)
        if hi is not None:
            acc = np.minimum(acc, hi)
        return acc.astype(np.int32).astype(self.out_dtype)
