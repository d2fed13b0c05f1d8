"""Turn the raw rounds into the table (medians, min-max, ratios) and the target checks.

Ratios compare an arm with dbtasks *in the same run* on the same store
(django-tasks-db/sqlite with dbtasks/sqlite, ...); Celery is compared with
dbtasks on Postgres, or on SQLite when Postgres was skipped. A ratio is the
arm's median divided by dbtasks' median: for throughput below 1 means slower
than dbtasks, for latency and memory above 1 means worse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from bench.harness import Metric
from bench.harness import summary

BASELINE = "dbtasks"


def baseline_name(arm_name: str, arm_names: Sequence[str]) -> str | None:
    system, _, store = arm_name.partition("/")
    if system == BASELINE:
        return None
    if store in {"sqlite", "postgres"}:
        candidate = f"{BASELINE}/{store}"
        return candidate if candidate in arm_names else None
    for store in ("postgres", "sqlite"):
        if f"{BASELINE}/{store}" in arm_names:
            return f"{BASELINE}/{store}"
    return None


def summarise(results: dict[str, Any], modules: Sequence[ModuleType]) -> dict[str, Any]:
    """{figure: {metric: {arm: {median, min, max, n, ratio, baseline}}}}."""
    out: dict[str, Any] = {}
    for module in modules:
        rounds = results["figures"].get(module.NAME, {}).get("rounds", {})
        figure: dict[str, Any] = {}
        for metric in module.METRICS:
            per_arm: dict[str, dict[str, Any]] = {
                arm: summary([r[metric.key] for r in data if r.get(metric.key) is not None])
                for arm, data in rounds.items()
            }
            per_arm = {arm: s for arm, s in per_arm.items() if s["n"]}
            for arm, stats in per_arm.items():
                base = baseline_name(arm, list(per_arm))
                stats["baseline"] = base
                stats["ratio"] = (
                    stats["median"] / per_arm[base]["median"]
                    if metric.ratio and base and per_arm[base]["median"]
                    else None
                )
            figure[metric.key] = per_arm
        out[module.NAME] = figure
    return out


def fmt(value: float | None, metric: Metric) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if metric.unit == "/s":
        return f"{value:,.0f}/s"
    if metric.unit == "ms":
        return f"{value:,.{metric.digits}f} ms"
    if metric.unit == "MiB":
        return f"{value:,.{metric.digits}f} MiB"
    if metric.unit == "%":
        return f"{value:.{metric.digits}f}%"
    if metric.unit == "+%":
        return f"{value:+.{metric.digits}f}%"
    if metric.unit == "x":
        return f"{value:.{metric.digits}f}x"
    return f"{value:,.{metric.digits}f}{metric.unit}"


def bare(value: float, metric: Metric) -> str:
    """The number without its unit, for the min-max range."""
    return fmt(value, metric).removesuffix("/s").removesuffix(" ms").removesuffix(" MiB")


def cell(arm: str, stats: dict[str, Any] | None, metric: Metric) -> str:
    """ "median (min-max) · ratiox", the ratio naming its baseline when the store differs."""
    if not stats:
        return "—"
    text = fmt(stats["median"], metric)
    if stats["n"] > 1 and stats["min"] != stats["max"]:
        text += f" ({bare(stats['min'], metric)}-{bare(stats['max'], metric)})"
    if stats.get("ratio") is not None:
        base_store = stats["baseline"].split("/")[1]
        note = "" if arm.endswith(f"/{base_store}") else f" (vs {base_store})"
        text += f" · {stats['ratio']:.2f}x{note}"
    return text


def table(results: dict[str, Any], modules: Sequence[ModuleType]) -> str:
    """Markdown tables, one per figure: arms down, metrics across."""
    summaries = results["summary"]
    lines: list[str] = []
    for module in modules:
        figure = summaries.get(module.NAME, {})
        arms: list[str] = []
        for per_arm in figure.values():
            arms += [arm for arm in per_arm if arm not in arms]
        if not arms:
            continue
        metrics = [m for m in module.METRICS if figure.get(m.key)]
        lines += [f"### {module.TITLE}", ""]
        lines.append("| arm | " + " | ".join(m.label for m in metrics) + " |")
        lines.append("|---|" + "---|" * len(metrics))
        for arm in arms:
            cells = [cell(arm, figure[metric.key].get(arm), metric) for metric in metrics]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


# --- Performance targets ---------------------------------------------------------


def med(results: dict[str, Any], figure: str, metric: str, arm: str) -> float | None:
    stats = results["summary"].get(figure, {}).get(metric, {}).get(arm)
    return stats["median"] if stats else None


def check(
    name: str, measured: float | None, limit: float, *, at_least: bool, shown: str
) -> dict[str, Any]:
    if measured is None or math.isnan(measured):
        return {"target": name, "measured": "not measured", "met": None}
    met = measured >= limit if at_least else measured <= limit
    return {"target": name, "measured": shown, "met": met}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Evaluate every performance target from the medians of this run."""
    out = []
    for store in ("sqlite", "postgres"):
        for workers in (1, 2):
            key = f"workers_{workers}"
            r = ratio(
                med(results, "drain", key, f"dbtasks/{store}"),
                med(results, "drain", key, f"django-tasks-db/{store}"),
            )
            out.append(
                check(
                    f"drain, {workers} worker(s), {store}: dbtasks ≥ 3x django-tasks-db",
                    r,
                    3,
                    at_least=True,
                    shown=f"{r:.2f}x" if r else "",
                )
            )
    for store in ("sqlite", "postgres"):
        r = ratio(
            med(results, "drain", "workers_2", f"dbtasks/{store}"),
            med(results, "drain", "workers_2", "celery/redis"),
        )
        out.append(
            check(
                f"drain, 2 processes, dbtasks/{store} ≥ Celery+Redis",
                r,
                1,
                at_least=True,
                shown=f"{r:.2f}x" if r else "",
            )
        )
    for store, limit in (("postgres", 20), ("sqlite", 150)):
        p50 = med(results, "pickup", "p50", f"dbtasks/{store}")
        out.append(
            check(
                f"pickup p50 on {store} ≤ {limit} ms",
                p50,
                limit,
                at_least=False,
                shown=f"{p50:.1f} ms" if p50 is not None else "",
            )
        )
    for key, label in (("total", "all statements"), ("data", "data statements only")):
        n = med(results, "statements", key, "dbtasks/postgres")
        out.append(
            check(
                f"statements per task on Postgres ≤ 3 ({label})",
                n,
                3,
                at_least=False,
                shown=f"{n:g}" if n is not None else "",
            )
        )
    out += per_store(
        results,
        "claim_latency",
        "growth",
        "claim latency at 1,000,000 rows ≤ 1.5x that at 10,000 ({store})",
        1.5,
        at_least=False,
        shown="{:.2f}x",
    )
    # The poll's target is its common case, nothing changed (one query, 204);
    # a changed row is rendered as the page renders it, shown in figure 6.
    out += per_store(
        results,
        "poll_http",
        "poll_204_share",
        "unchanged poll ≥ 70% of hello req/s ({store})",
        70,
        at_least=True,
        shown="{:.0f}%",
    )
    out += per_store(
        results,
        "memory",
        "growth",
        "worker RSS growth 1,000 → 100,000 tasks ≤ +10% ({store})",
        10,
        at_least=False,
        shown="{:+.1f}%",
    )
    return out


def per_store(
    results: dict[str, Any],
    figure: str,
    key: str,
    target: str,
    limit: float,
    *,
    at_least: bool,
    shown: str,
) -> list[dict[str, Any]]:
    """One target per database on a dbtasks figure (``target`` names it as ``{store}``)."""
    out = []
    for store in ("sqlite", "postgres"):
        r = med(results, figure, key, f"dbtasks/{store}")
        out.append(
            check(
                target.format(store=store),
                r,
                limit,
                at_least=at_least,
                shown=shown.format(r) if r is not None else "",
            )
        )
    return out


def targets_table(checks: Sequence[dict[str, Any]]) -> str:
    lines = ["| target | measured | |", "|---|---|---|"]
    for item in checks:
        verdict = {True: "met", False: "**missed**", None: "—"}[item["met"]]
        lines.append(f"| {item['target']} | {item['measured']} | {verdict} |")
    return "\n".join(lines)
