"""edgeknn: a teachable machine for the edge."""

import os

# One BLAS thread, set before numpy loads its BLAS: edgeknn's matrix products are
# small (a frame's scores, a few-shot refit) and share the CPU with the camera
# and the interpreter; a multi-threaded OpenBLAS spin-waits its threads and made
# a 100-row refit 50x slower (10 s instead of 0.2 s) on a busy 2-core machine.
# A user who wants more sets OPENBLAS_NUM_THREADS themselves.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

__version__ = "0.1.0"
