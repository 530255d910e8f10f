"""cryptomon: a terminal live monitor for cryptocurrency exchange APIs."""

__version__ = "0.1.0"
