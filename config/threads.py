"""One BLAS/OpenMP thread per process for commands that analyse audio.

An analysis job is single-threaded by design (``analyze --jobs``, the API's workers and
the daemon's channels scale by process or channel). Left to their defaults, the OpenBLAS
copies that numpy and SciPy load start a thread per core, which spin after every call;
``threadpoolctl.threadpool_limits`` only limits the libraries already loaded when it is
entered, and SciPy's loads later. The variables must be set before numpy is imported.
"""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def single_thread_environment() -> None:
    """Set one thread for BLAS and OpenMP in the processes this one starts, and in this one
    if numpy is not loaded yet (the libraries read the variables when they load)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
