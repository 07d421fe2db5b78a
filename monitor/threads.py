"""One BLAS thread for the pipeline.

The pipeline's linear algebra is small (a window of a few thousand rows by a
few dozen features: the PCA test's SVD, matrix products of the multivariate
tests), and the daemon is one Python thread.  A multi-threaded BLAS wins
nothing on such matrices and, on a machine whose cores are busy (other
processes, other daemons), its threads spin waiting for each other: an SVD of
2,500 x 9 took 70 ms with OpenBLAS's default 2 threads against 0.6 ms with 1
on a loaded 2-core host (benchmarks/README.md, "Throughput profile").
"""

from __future__ import annotations

from typing import Any

_limits: Any = None  # kept alive: the limit holds while the object does


def one_blas_thread() -> None:
    """Limit every loaded BLAS/LAPACK (numpy's and scipy's) to one thread, for good."""
    global _limits
    import numpy  # noqa: F401  (loads the BLAS the limit applies to)
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    _limits = threadpool_limits(limits=1, user_api="blas")
