"""nst: neural style transfer from the command line."""

__version__ = "0.1.0"
