"""A project's transparency report on its training compute (``gpuc report transparency``), rendered
for publishing: Markdown for a web page or a filing, JSON as the API gives it, or CSV (one line per
lineage, model and month, with a ``section`` column saying which)."""

from __future__ import annotations

import csv
import io

from gpucommons.service.schemas.reports import TransparencyRead

CSV_FIELDS = ("section", "name", "gpu_hours", "flops", "share_of_threshold", "status", "cumulative_flops")


def render(report: TransparencyRead, output: str) -> str:
    """``report`` as ``md``, ``json`` or ``csv`` text."""
    if output == "json":
        return report.model_dump_json(indent=2) + "\n"
    if output == "csv":
        return _csv(report)
    return _markdown(report)


def _markdown(r: TransparencyRead) -> str:
    t = r.total
    lines = [
        f"# Training compute of project {r.project}",
        "",
        f"As of {r.generated_at:%Y-%m-%d %H:%M} UTC: **{t.flops:.3g} FLOPs**, {t.share_of_threshold:.2%} "
        f"of the AI Basic Act's threshold of {r.threshold_flops:.0e} FLOPs ({t.status}), over "
        f"{t.gpu_hours:,.1f} GPU-hours.",
        "",
        "## By model lineage",
        "",
        "| lineage | GPU-hours | FLOPs | of threshold | status |",
        "|---|---:|---:|---:|---|",
        *(
            f"| {x.lineage or '(none named)'} | {x.gpu_hours:,.1f} | {x.flops:.3g} | "
            f"{x.share_of_threshold:.2%} | {x.status} |"
            for x in r.lineages
        ),
        "",
        "## By accelerator model",
        "",
        "| model | BF16 peak (TFLOPS) | GPU-hours | FLOPs |",
        "|---|---:|---:|---:|",
        *(f"| {m.model} | {m.bf16_tflops:,.0f} | {m.gpu_hours:,.1f} | {m.flops:.3g} |" for m in r.models),
        "",
        "## By month",
        "",
        "| month | GPU-hours | FLOPs | cumulative FLOPs |",
        "|---|---:|---:|---:|",
        *(f"| {m.month} | {m.gpu_hours:,.1f} | {m.flops:.3g} | {m.cumulative_flops:.3g} |" for m in r.months),
        "",
        "## Method",
        "",
        r.method,
        "",
    ]
    return "\n".join(lines)


def _csv(r: TransparencyRead) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    t = r.total
    writer.writerow(("total", r.project, t.gpu_hours, t.flops, t.share_of_threshold, t.status, ""))
    for x in r.lineages:
        writer.writerow(("lineage", x.lineage, x.gpu_hours, x.flops, x.share_of_threshold, x.status, ""))
    for m in r.models:
        writer.writerow(("model", m.model, m.gpu_hours, m.flops, "", "", ""))
    for mo in r.months:
        writer.writerow(("month", mo.month, mo.gpu_hours, mo.flops, "", "", mo.cumulative_flops))
    return buffer.getvalue()
