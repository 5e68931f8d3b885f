"""nba: a real-time next-best-action decisioning server."""

import os

__version__ = "0.1.0"

# prometheus-client chooses where metric values live when it is first imported, from this variable. nba
# sets it, with WORKER_METRICS_DIR, only for the workers of one `nba serve --workers N` (nba/metrics.py);
# left in the environment by anything else, it would make a one-process server or a command count into
# a directory nobody empties, and report what earlier runs counted there.
WORKER_METRICS_DIR = "NBA_WORKER_METRICS_DIR"
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") != os.environ.get(WORKER_METRICS_DIR):
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
