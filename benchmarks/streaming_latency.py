"""Streaming latency benchmark (also ``evostreaming bench streaming``).

    python benchmarks/streaming_latency.py --model tiny:qwen2_5_vl --frames 300 --json runs/bench/lat.json

Writes the per-step series and the headline ratios (``speedup_vs_naive``, ``bounded_growth``) to
JSON and a PNG plot beside it.
"""

import sys

from evostreaming.cli import app

if __name__ == "__main__":
    app(["bench", "streaming", *sys.argv[1:]], prog_name="streaming_latency.py")
