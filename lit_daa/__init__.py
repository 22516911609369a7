"""lit-daa: Direct Alignment Algorithms on Lightning, with tools to measure reward over-optimization."""

__version__ = "0.1.0"
