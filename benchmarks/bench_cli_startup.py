"""How long `netscaffold --help` and `netscaffold --version` take (target: under 0.5 s).

Runs each command N times in fresh processes and prints the median and best wall times.
Usage: python benchmarks/bench_cli_startup.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def time_command(args: list[str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "from netscaffold.cli.main import main; main()", *args],
            check=True,
            capture_output=True,
        )
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    result = {}
    for name, args in (("help", ["--help"]), ("version", ["--version"])):
        samples = time_command(args, opts.runs)
        result[f"{name}_s_median"] = round(statistics.median(samples), 4)
        result[f"{name}_s_best"] = round(min(samples), 4)
    print(json.dumps(result) if opts.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
