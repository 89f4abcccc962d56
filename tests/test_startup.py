"""`bertkit` must start fast: the CLI may not import the heavy ML stack until a command needs it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import bertkit

HEAVY = ("torch", "transformers", "datasets", "accelerate", "evaluate", "sklearn", "matplotlib", "pandas")

# Runs `body`, then prints which heavy top-level packages ended up imported, as JSON.
_PROBE = textwrap.dedent(
    """
    import json, runpy, sys
    {body}
    heavy = {heavy!r}
    print("LOADED=" + json.dumps(sorted(name for name in heavy if name in sys.modules)))
    """
)


def _loaded_after(body: str) -> list[str]:
    script = _PROBE.format(body=textwrap.dedent(body), heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    marker = [line for line in done.stdout.splitlines() if line.startswith("LOADED=")]
    assert marker, done.stdout
    return json.loads(marker[-1].removeprefix("LOADED="))


def _run_module(*argv: str) -> str:
    """Source that runs `python -m bertkit ARGV` in the probe process, swallowing its exit."""
    return f"""
    sys.argv = ["bertkit", *{list(argv)!r}]
    try:
        runpy.run_module("bertkit", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    """


def test_importing_the_cli_loads_no_heavy_library():
    assert _loaded_after("import bertkit.cli") == []


@pytest.mark.parametrize(
    "argv",
    [("--help",), ("recipes", "--help"), ("recipes", "list"), ("recipes", "validate", "quickstart")],
    ids=["help", "recipes-help", "recipes-list", "recipes-validate"],
)
def test_light_commands_load_no_heavy_library(argv):
    assert _loaded_after(_run_module(*argv)) == []


def test_python_m_bertkit_help_runs():
    done = subprocess.run(
        [sys.executable, "-m", "bertkit", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout
    assert "recipes" in done.stdout


def test_python_m_bertkit_version_prints_the_version():
    done = subprocess.run(
        [sys.executable, "-m", "bertkit", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"bertkit {bertkit.__version__}"
