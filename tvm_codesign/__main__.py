"""``python -m tvm_codesign``: the simulator demo (see ``tvm_codesign.demo``)."""
from .demo import main

main()
