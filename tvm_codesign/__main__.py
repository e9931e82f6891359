"""``python -m tvm_codesign``: the main job (see ``tvm_codesign.demo``)."""
from .demo import main

main()
