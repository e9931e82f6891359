"""Layers and a tiny design space shared by the tuner tests."""
import tvm_codesign as tc

LAYERS = [(tc.Workload.conv2d(1, 64, 28, 28, 64, 3, 1, 1, bias=True, shift=9, relu=True, out_dtype="int8"), 2),
          (tc.Workload.conv2d(1, 64, 28, 28, 128, 1, 2, 0, bias=True, shift=8, out_dtype="int8"), 1),
          (tc.Workload.dense(1, 256, 100), 1)]
TINY = {"name": "tiny", "base": "vta_default", "params": {"block_in": [8, 16, 32], "block_out": [8, 16, 32],
                                                          "inp_buffer_bytes": {"pow2": [13, 15]},
                                                          "dram_bandwidth": [4.0, 8.0]},
        "constraints": {"area_mm2_max": 6.2}}
