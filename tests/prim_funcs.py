"""TVMScript functions shared by the tests."""
from tvm.script import tirx as T


@T.prim_func(s_tir=True)
def matmul_kn(C: T.Buffer((20, 24), "int32"), A: T.Buffer((20, 40), "int8"), B: T.Buffer((40, 24), "int8")):
    for i, j, k in T.grid(20, 24, 40):
        with T.sblock("C"):
            vi, vj, vk = T.axis.remap("SSR", [i, j, k])
            with T.init():
                C[vi, vj] = 0
            C[vi, vj] = C[vi, vj] + T.Cast("int32", A[vi, vk]) * T.Cast("int32", B[vk, vj])
