"""Opportuna: one real potential sale is one opportunity."""

__version__ = "0.1.0"
