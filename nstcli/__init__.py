"""nst: neural style transfer from the command line."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``nstcli.Stylizer`` (see ``nstcli.apply.stylizer``), imported on first use so ``import nstcli`` stays light."""
    if name == "Stylizer":
        from nstcli.apply.stylizer import Stylizer

        return Stylizer
    raise AttributeError(f"module 'nstcli' has no attribute {name!r}")
