"""Run every benchmark of the project and write the results table of BENCHMARKS.md.

Each benchmark measures bertkit against the tool a user would otherwise use, side
by side in the same run, and reports the ratio. This runs them one after the other
in this process (those that train start their own child processes), collects one
table row per target, and rewrites BENCHMARKS.md at the repository root: the table
(benchmark, bertkit, baseline, ratio, target, met?), the machine, the versions, the
exact command and the date, then each benchmark's own report. Anything written by
hand below the notes marker line of BENCHMARKS.md is kept.

    python bench/run.py                      # everything; minutes to hours on a CPU
    python -m bench --quick                  # smoke run: small sizes, a few minutes
    python bench/run.py --only predict,export
    python bench/run.py --json               # for scripts (the file is still written)
    python bench/run.py --output results.md  # somewhere else

A quick run only prints its table: its numbers are too small to publish, so it
leaves BENCHMARKS.md alone unless `--output` is given. `--no-write` never writes.
Benchmarks run on the CPU, and on the GPU where one is present and the benchmark
supports it. Those that need ../shared/data report `skipped` when it is absent.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `bench` importable
    sys.path.insert(0, str(REPO))

# In the order of a model's life; `pretrain` runs when bench/pretrain.py exists.
BENCHMARKS = ("startup", "finetune", "pretrain", "ner", "qa", "embed", "predict", "export", "serve", "memory")
DEFAULT_OUTPUT = REPO / "BENCHMARKS.md"
NOTES_MARKER = "<!-- notes: hand-written notes go below this line; bench/run.py keeps them -->"


def available() -> list[str]:
    """The benchmarks whose module exists in bench/."""
    here = Path(__file__).resolve().parent
    return [name for name in BENCHMARKS if (here / f"{name}.py").is_file()]


def run_one(name: str, quick: bool) -> dict[str, Any]:
    """Import bench/<name>.py and call its `run(quick)`; an exception becomes an `error` entry."""
    start = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.{name}")
        result = module.run(quick=quick)
    except Exception as exc:  # noqa: BLE001 - one failing benchmark must not stop the others
        result = {"benchmark": name, "quick": quick, "error": f"{type(exc).__name__}: {exc}"}
        result["traceback"] = traceback.format_exc()
    result["bench_seconds"] = time.perf_counter() - start
    return result


# --------------------------------------------------------------------------- table rows


def rows_for(name: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """The table rows of one benchmark's result: its module's `summary`, else a built-in reading."""
    if result.get("error"):
        return [_row(name, f"error: {result['error'].splitlines()[0]}", "", None, "", "ERROR")]
    if result.get("skipped"):
        return [_row(name, f"skipped: {result['skipped']}", "", None, "", "skipped")]
    module = sys.modules.get(f"bench.{name}")
    summary: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = getattr(module, "summary", None)
    if summary is not None:
        return summary(result)
    reader = _READERS.get(name, _generic_rows)
    return reader(result)


def _row(
    benchmark: str, ours: str, baseline: str, ratio: float | None, target: str, met: Any
) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "bertkit": ours,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "met": met,
    }


def _startup_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    ours, theirs = result["bertkit_help"], result["import_transformers"]
    return [
        _row(
            "`bertkit --help` start-up",
            f"{ours['median_s']:.3f} s median",
            f'{theirs["median_s"]:.3f} s (`python -c "import transformers"`)',
            result["ratio"],
            f"under {result['budget_s']:g} s; ratio reported",
            result["within_budget"],
        )
    ]


def _finetune_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    tools, targets = result["tools"], result["targets"]
    ours = tools["bertkit"]
    rows_used = result["settings"]["rows"]
    label = f"fine-tuning samples/s (SST-2, {rows_used:,} rows, MiniLM)"
    rows = []
    for key, tool, name in (
        ("vs_tutorial", "tutorial", "tutorial Trainer script (pad to 128)"),
        ("vs_best_practice", "best_practice", "best-practice script (dynamic padding)"),
        ("vs_sorted", "bertkit_sorted", "bertkit's sorted micro-batches (before padding-free)"),
    ):
        rows.append(
            _row(
                label,
                f"{ours['train_samples_per_second']:.1f} samples/s ({ours['utilisation']:.0%} of peak)",
                f"{tools[tool]['train_samples_per_second']:.1f} samples/s "
                f"({tools[tool]['utilisation']:.0%} of peak), {name}",
                targets[key]["ratio"],
                f">= {targets[key]['target']:g}x",
                targets[key]["met"],
            )
        )
    rows.append(
        _row(
            "fine-tuning useful-FLOP utilisation (SST-2, MiniLM)",
            f"{ours['useful_gflops']:.0f} GFLOP/s, {ours['utilisation']:.1%} of {result['peak_gflops']:.0f}",
            f"{tools['bertkit_sorted']['utilisation']:.1%} (sorted micro-batches); best case "
            + (f"{result['ceiling']['utilisation']:.1%} " if "ceiling" in result else "")
            + "(one equal-length batch, forward+backward only)",
            None,
            f">= {targets['utilisation']['target']:.0%} of the measured fp32 matmul peak",
            targets["utilisation"]["met"],
        )
    )
    accuracy = targets["accuracy"]
    if "dev_accuracy_mean" in ours:
        seeds = ", ".join(str(s) for s in accuracy.get("seeds", []))
        shown = f"{ours['dev_accuracy_mean']:.2%} (mean of seeds {seeds})"
        baseline = (
            f"{tools['bertkit_sorted']['dev_accuracy_mean']:.2%} (sorted micro-batches), "
            f"{tools['best_practice']['dev_accuracy_mean']:.2%} (best-practice script), same seeds"
        )
    else:
        shown = f"{ours['dev_accuracy']:.2%}"
        best = max(tools[t]["dev_accuracy"] for t in ("tutorial", "best_practice"))
        baseline = f"{best:.2%} (the better baseline)"
    rows.append(
        _row(
            "fine-tuning SST-2 dev accuracy",
            shown,
            baseline,
            None,
            f"within {accuracy['tolerance_points']:g} pt",
            accuracy["met"],
        )
    )
    return rows


def _predict_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    outputs = result["outputs"]
    return [
        _row(
            "predict texts/s, torch fp32",
            f"{result['bertkit']['texts_per_second']:.1f} texts/s; labels agree "
            f"{outputs['label_agreement']:.2%}",
            f"{result['pipeline']['texts_per_second']:.1f} texts/s (`transformers.pipeline`, same batch)",
            result["ratio"],
            f">= {result['target']:g}x, same labels",
            result["met"],
        )
    ]


def _generic_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for a benchmark without `summary`: its `targets` ({name: {ratio, target, met}}), or its ratio."""
    name = result.get("benchmark", "?")
    targets = result.get("targets")
    if isinstance(targets, dict) and targets and all(isinstance(t, dict) for t in targets.values()):
        rows = []
        for key, t in targets.items():
            goal = t.get("target")
            shown = f">= {goal:g}x" if isinstance(goal, int | float) else str(goal or "")
            rows.append(
                _row(f"{name}: {key}", "see the report below", "", t.get("ratio"), shown, t.get("met"))
            )
        return rows
    target = result.get("target")
    return [
        _row(
            name,
            "see the report below",
            "",
            result.get("ratio"),
            f">= {target:g}x" if isinstance(target, int | float) else "",
            result.get("met", result.get("all_met")),
        )
    ]


_READERS = {"startup": _startup_rows, "finetune": _finetune_rows, "predict": _predict_rows}


# --------------------------------------------------------------------------- machine and versions


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, GPU and load, read where the OS keeps them."""
    info: dict[str, Any] = {"platform": platform.platform(), "cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gb"] = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    info.setdefault("cpu", platform.processor() or platform.machine())
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["gpu"] = None
    return info


def versions() -> dict[str, str | None]:
    """Versions of the interpreter and the libraries the benchmarks exercise."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("bertkit", "torch", "transformers", "accelerate", "datasets", "onnxruntime", "onnx"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def command_line(argv: list[str]) -> str:
    """How this run was started, as a user would type it from the repository root."""
    script = Path(argv[0]) if argv else Path("bench/run.py")
    if script.name == "__main__.py":
        head = ["python", "-m", "bench"]
    else:
        try:
            head = ["python", str(script.resolve().relative_to(REPO))]
        except ValueError:
            head = ["python", str(script)]
    return shlex.join([*head, *argv[1:]])


# --------------------------------------------------------------------------- BENCHMARKS.md


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _met(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "**no**"
    return "-" if value is None else str(value)


def table(rows: list[dict[str, Any]]) -> str:
    """The results table, as Markdown."""
    lines = ["| benchmark | bertkit | baseline | ratio | target | met? |", "|---|---|---|---:|---|---|"]
    for row in rows:
        ratio = "-" if row.get("ratio") is None else f"{row['ratio']:.2f}x"
        cells = [row["benchmark"], row["bertkit"], row["baseline"] or "-", ratio, row["target"] or "-"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + f" | {_met(row.get('met'))} |")
    return "\n".join(lines)


def report(run: dict[str, Any], renders: dict[str, str]) -> str:
    """The generated part of BENCHMARKS.md (everything above the notes marker)."""
    m, v = run["machine"], run["versions"]
    quick = " **Quick run: smoke numbers from small sizes, not results.**" if run["quick"] else ""
    gpu = m.get("gpu") or "none (CPU run)"
    load = ", ".join(str(x) for x in m.get("load_average", [])) or "n/a"
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by bench/run.py: everything above the notes marker is rewritten on each run. -->",
        "",
        f"Measured on {run['date']} with `{run['command']}` ({run['seconds'] / 60:.1f} min).{quick}",
        "Each ratio compares bertkit with the tool a user would otherwise use, measured side by side "
        "in the same run; ratios above 1 favour bertkit.",
        "",
        table(run["rows"]),
        "",
        "## Machine",
        "",
        f"- CPU: {m.get('cpu')}, {m.get('cores')} cores; RAM {m.get('ram_gb', '?')} GB; GPU: {gpu}",
        f"- {m.get('platform')}; load average at the start: {load}",
        "",
        "## Versions",
        "",
        "- " + ", ".join(f"{name} {value}" for name, value in v.items() if value),
        "",
        "## Reports",
        "",
    ]
    for name, text in renders.items():
        result = run["results"][name]
        seconds = result.get("bench_seconds", 0.0)
        reused = result.get("reused_from")
        origin = "; reused: measured by an earlier run in the same session" if reused else ""
        lines += [f"### {name} ({seconds:.0f} s{origin})", "", "```text", text, "```", ""]
    return "\n".join(lines)


def write_benchmarks(path: Path, generated: str) -> None:
    """Write `generated` above the notes marker, keeping whatever is below it (or the old file)."""
    from bertkit.files import atomic_write_text

    notes = ""
    if path.is_file():
        old = path.read_text(encoding="utf-8")
        if NOTES_MARKER in old:
            notes = old.split(NOTES_MARKER, 1)[1].lstrip("\n")
        elif old.strip():
            notes = "Kept from the file before bench/run.py first wrote it:\n\n" + old
    atomic_write_text(path, f"{generated.rstrip()}\n\n{NOTES_MARKER}\n\n{notes}".rstrip() + "\n")


# --------------------------------------------------------------------------- entry point


def run_all(
    names: list[str], quick: bool, argv: list[str], reuse: dict[str, Path] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Run the named benchmarks; return the whole run (rows, machine, versions) and each report.

    `reuse` maps a benchmark to the JSON result of an earlier run of it (its own
    `--json` output) to put in the table instead of running it again; the report
    says so.
    """
    start = time.perf_counter()
    info = machine()  # before the benchmarks: the load average says how busy the machine was
    results: dict[str, dict[str, Any]] = {}
    renders: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        if reuse and name in reuse:
            importlib.import_module(f"bench.{name}")  # for its summary and render
            result = json.loads(reuse[name].read_text(encoding="utf-8"))
            result["reused_from"] = str(reuse[name])
        else:
            result = run_one(name, quick)
        results[name] = result
        rows += rows_for(name, result)
        renders[name] = _render(name, result)
        print(renders[name] + "\n", file=sys.stderr, flush=True)
    run = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command_line(argv),
        "quick": quick,
        "seconds": time.perf_counter() - start,
        "machine": info,
        "versions": versions(),
        "rows": rows,
        "results": results,
    }
    return run, renders


def _render(name: str, result: dict[str, Any]) -> str:
    if result.get("error"):
        return f"error: {result['error']}\n\n{result.get('traceback', '')}".rstrip()
    module = sys.modules.get(f"bench.{name}")
    render = getattr(module, "render", None)
    if render is None:
        return json.dumps(result, indent=2, default=str)
    try:
        return render(result)
    except Exception as exc:  # noqa: BLE001 - a report that cannot render must not lose the run
        return f"(render failed: {type(exc).__name__}: {exc})\n{json.dumps(result, indent=2, default=str)}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    prog = "python -m bench" if argv and argv[0].endswith("__main__.py") else "bench/run.py"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few minutes")
    parser.add_argument("--only", help=f"comma-separated benchmarks to run, of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--json", action="store_true", help="print the whole run as JSON on stdout")
    parser.add_argument("--output", type=Path, help="the file to write (default BENCHMARKS.md; quick: none)")
    parser.add_argument("--no-write", action="store_true", help="print only; write no file")
    parser.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="use the JSON result of an earlier `bench/NAME.py --json` run instead of running NAME",
    )
    args = parser.parse_args(argv[1:])
    present = available()
    names = present
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        missing = [n for n in names if n not in present]
        if missing:
            parser.error(f"not in bench/ yet: {', '.join(missing)}")
    reuse = {}
    for item in args.reuse:
        name, _, file = item.partition("=")
        if name not in BENCHMARKS or not file:
            parser.error(f"--reuse {item}: expected NAME=FILE with NAME one of {', '.join(BENCHMARKS)}")
        reuse[name] = Path(file)
    run, renders = run_all(names, args.quick, argv, reuse)
    generated = report(run, renders)
    target = None if args.no_write else args.output or (None if args.quick else DEFAULT_OUTPUT)
    if target is not None:
        write_benchmarks(target, generated)
        print(f"[bench] wrote {target}", file=sys.stderr)
    elif args.quick and not args.no_write:
        print("[bench] quick run: BENCHMARKS.md left alone (--output FILE writes one)", file=sys.stderr)
    if args.json:
        print(json.dumps(run, indent=2, default=str))
    else:
        print(table(run["rows"]))
    failed = [r for r in run["results"].values() if r.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
