"""nst: neural style transfer from the command line."""

import os

# numpy's BLAS only serves small matrices in nst (colour transforms; WCT's covariances, at most 512 x 512).
# Its thread pool, spinning against onnxruntime's and torch's, made one 512 x 512 eigh 25x slower (2 s, not
# 0.08 s) on a busy 2-core machine. Set before numpy loads; a value in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``nstcli.Stylizer`` (see ``nstcli.apply.stylizer``), imported on first use so ``import nstcli`` stays light."""
    if name == "Stylizer":
        from nstcli.apply.stylizer import Stylizer

        return Stylizer
    raise AttributeError(f"module 'nstcli' has no attribute {name!r}")
