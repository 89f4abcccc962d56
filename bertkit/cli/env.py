"""`bertkit env`: what bertkit runs on, for you and for bug reports."""

from __future__ import annotations

from bertkit.cli import app
from bertkit.cli.options import JsonOption


@app.command("env")
def env(as_json: JsonOption = False) -> None:
    """Show versions, devices and settings.

    Paste the --json output into bug reports.

    \b
    Examples:
      bertkit env
      bertkit env --json
    """
    import json

    from rich.table import Table

    from bertkit.console import out
    from bertkit.environment import environment_report

    report = environment_report()
    if as_json:
        out.print_json(json.dumps(report))
        return
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("bertkit", report["bertkit"])
    table.add_row("python", f"{report['python']} ({report['executable']})")
    table.add_row("platform", report["platform"])
    for name, version in report["packages"].items():
        table.add_row(name, version or "[red]not installed[/red]")
    devices = report["devices"]
    device = devices["device"]
    if devices.get("gpus"):
        device += f" x{len(devices['gpus'])}: " + ", ".join(devices["gpus"])
    table.add_row("device", device)
    table.add_row("bf16", "yes" if devices.get("bf16") else "no")
    table.add_row("cpu cores", str(report["cpu_count"]))
    table.add_row("hub offline", "yes" if report["hub_offline"] else "no (HF_HUB_OFFLINE unset)")
    table.add_row("accelerate config", report["accelerate_config"] or "none (single process)")
    if report["distributed"]:
        table.add_row("launcher", ", ".join(f"{k}={v}" for k, v in report["distributed"].items()))
    out.print(table)
