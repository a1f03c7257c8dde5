"""facexplain: explain face-recognition decisions by attribute recovery."""

__version__ = "0.1.0"
