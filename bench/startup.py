"""Start-up benchmark: how long `bertkit --help` takes, next to `python -c "import transformers"`.

A user pays the start-up time on every command, including `--help` and typos, so it
must stay a small fraction of what importing the ML stack costs. Both commands run in
fresh processes in the same session, so the ratio holds on any machine.

    python bench/startup.py              # table; exits 1 if bertkit --help is over budget
    python bench/startup.py --json       # for scripts
    python bench/startup.py --no-check   # measure only

`bench/run.py` calls `run(quick)` and reads the returned dict.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BUDGET_S = 0.3  # median wall time allowed for `bertkit --help`


def bertkit_command() -> list[str]:
    """The installed `bertkit` console script beside this interpreter, else `python -m bertkit`."""
    script = Path(sys.executable).parent / "bertkit"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("bertkit")
    if found and Path(found).parent == Path(sys.executable).parent:
        return [found]
    return [sys.executable, "-m", "bertkit"]


def time_command(argv: list[str], runs: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of `runs` runs of `argv` (after `warmup` untimed runs).

    Raises:
        RuntimeError: the command failed.
    """
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {detail[0]}")
        if i >= warmup:
            times.append(elapsed)
    return times


def _summary(command: list[str], times: list[float]) -> dict[str, Any]:
    return {
        "command": " ".join(command),
        "runs": len(times),
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Measure both commands and return the numbers.

    Args:
        quick: fewer runs (3 and 1 instead of 7 and 3), for smoke runs.

    Returns:
        `bertkit_help` and `import_transformers` summaries (median/min/max seconds),
        `ratio` (import transformers median / bertkit --help median), the budget and
        whether bertkit is within it.
    """
    help_command = [*bertkit_command(), "--help"]
    import_command = [sys.executable, "-c", "import transformers"]
    help_times = time_command(help_command, runs=3 if quick else 7)
    import_times = time_command(import_command, runs=1 if quick else 3)
    bertkit_help = _summary(help_command, help_times)
    baseline = _summary(["python", "-c", '"import transformers"'], import_times)
    return {
        "benchmark": "startup",
        "quick": quick,
        "python": sys.version.split()[0],
        "bertkit_help": bertkit_help,
        "import_transformers": baseline,
        "ratio": baseline["median_s"] / bertkit_help["median_s"],
        "budget_s": BUDGET_S,
        "within_budget": bertkit_help["median_s"] <= BUDGET_S,
    }


def render(result: dict[str, Any]) -> str:
    """A small plain-text table of `run()`'s result."""
    rows = [("command", "runs", "median", "min", "max")]
    for key in ("bertkit_help", "import_transformers"):
        item = result[key]
        rows.append(
            (
                item["command"],
                str(item["runs"]),
                f"{item['median_s']:.3f} s",
                f"{item['min_s']:.3f} s",
                f"{item['max_s']:.3f} s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
    verdict = "within" if result["within_budget"] else "OVER"
    lines.append("")
    lines.append(f"bertkit --help starts {result['ratio']:.1f}x faster than importing transformers")
    lines.append(
        f"budget: {result['budget_s']:.2f} s median; {verdict} ({result['bertkit_help']['median_s']:.3f} s)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument(
        "--no-check", action="store_true", help=f"exit 0 even when over the {BUDGET_S} s budget"
    )
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    print(json.dumps(result, indent=2) if args.json else render(result))
    if not result["within_budget"] and not args.no_check:
        print(
            f"bertkit --help took {result['bertkit_help']['median_s']:.3f} s (median), "
            f"over the {BUDGET_S} s budget: look for a heavy import at module level "
            "(python -X importtime -c 'import bertkit.cli')",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
