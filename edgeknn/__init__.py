"""edgeknn: a teachable machine for the edge."""

__version__ = "0.1.0"
