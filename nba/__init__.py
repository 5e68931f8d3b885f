"""nba: a real-time next-best-action decisioning server."""

__version__ = "0.1.0"
