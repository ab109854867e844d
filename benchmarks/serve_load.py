"""Load on `evostreaming serve` from loopback (also ``evostreaming bench load``).

    python benchmarks/serve_load.py --model pocket --max-sessions 4 --fps 0.5 --seconds 30 \
        --json docs/bench/serve_load.json

Starts the server on 127.0.0.1, opens 1 ... max+1 concurrent sessions, and writes JSON and a PNG.
"""

import sys

from evostreaming.cli import app

if __name__ == "__main__":
    app(["bench", "load", *sys.argv[1:]], prog_name="serve_load.py")
