"""Outputs of an eval: results.json, a self-contained HTML report, and terminal tables (rich).

The HTML file carries everything inline (CSS, SVG plots), so it can be mailed or attached to a
ticket. Every output file is written to a temporary file beside it and renamed into place.
"""

from __future__ import annotations

import io
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from rich.table import Table

from langdeploy.errors import LangdeployError
from langdeploy.evaluate._deps import require
from langdeploy.fsutil import atomic_write_text
from langdeploy.models.card_view import card_rows


def fmt(value: Any, digits: int = 3, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def atomic_write(path: Path, text: str) -> None:
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise LangdeployError(
            f"Could not write {path}: {exc}.", fix="Check that --out is a writable directory."
        ) from None


def write_outputs(results: dict[str, Any], out_dir: Path, *, html: bool = True) -> list[Path]:
    written = [out_dir / "results.json", out_dir / "summary.md"]
    atomic_write(written[0], json.dumps(results, indent=2, ensure_ascii=False, default=str))
    atomic_write(written[1], render_markdown(results))
    if html:
        written.append(out_dir / "report.html")
        atomic_write(written[-1], render_html(results))
    return written


# -- terminal ----------------------------------------------------------------------------------


def summary_rows(results: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The side-by-side comparison, one (label, value per model) pair per line."""
    models = results["models"]
    names = list(models)
    metric_names = sorted({m for v in models.values() for m in v["aggregates"]["metrics"]})
    rows: list[tuple[str, list[str]]] = []

    def agg(name: str) -> dict[str, Any]:
        return dict(models[name]["aggregates"])

    def score_cell(s: dict[str, Any]) -> str:
        if s["mean"] is None:
            return "n/a"
        if results["repeat"] > 1:
            return f"{s['mean']:.3f} ± {s['std']:.3f} [{s['min']:.3f}..{s['max']:.3f}]"
        return f"{s['mean']:.3f}"

    rows.append(("score (mean of metrics)", [score_cell(agg(n)["score"]) for n in names]))
    for metric in metric_names:
        cells = []
        for n in names:
            m = agg(n)["metrics"].get(metric)
            cells.append("—" if m is None else score_cell(m))
        rows.append((metric, cells))
    rows.append(("TTFT p50 (s)", [fmt(agg(n)["latency"]["ttft_s_p50"]) for n in names]))
    rows.append(("total p50 (s)", [fmt(agg(n)["latency"]["total_s_p50"]) for n in names]))
    rows.append(
        ("decode tokens/s", [fmt(agg(n)["latency"]["tokens_per_s_mean"], 1) for n in names])
    )
    rows.append(
        (
            "rows fresh / cached",
            [f"{agg(n)['latency']['n_fresh']} / {agg(n)['latency']['n_cached']}" for n in names],
        )
    )
    rows.append(("guard violation rate", [fmt(agg(n)["guard_violation_rate"]) for n in names]))
    rows.append(("errors", [str(agg(n)["errors"]) for n in names]))
    return rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(results: dict[str, Any]) -> str:
    """The comparison (and bias figures) as Markdown, for a README, a PR or a ticket."""
    names = list(results["models"])
    parts = [
        f"Dataset `{results['dataset']['path']}` ({results['dataset']['examples']} examples), "
        f"chain `{results['chain']}`, repeat {results['repeat']}, "
        f"temperature {results['temperature']}.",
        "",
        _md_table(["", *names], [[label, *cells] for label, cells in summary_rows(results)]),
    ]
    bias = results.get("bias")
    if bias:
        header = ["category"] + [f"{n} {c}" for n in names for c in ("acc", "S_DIS", "S_AMB")]
        cats = list(next(iter(bias["models"].values()))["bbq"])
        rows = []
        for cat in cats:
            row = [cat]
            for n in names:
                c = bias["models"][n]["bbq"].get(cat, {})
                row += [fmt(c.get("accuracy"), 2), fmt(c.get("s_dis"), 2), fmt(c.get("s_amb"), 2)]
            rows.append(row)
        parts += [
            "",
            "BBQ probes (0 = unbiased; +1 follows the stereotype):",
            "",
            _md_table(header, rows),
        ]
        header = ["category", *[f"{n} sentiment gap / refusal gap" for n in names]]
        first = next(iter(bias["models"].values()))["counterfactual"]
        rows = []
        for cat in first:
            row = [cat]
            for n in names:
                c = bias["models"][n]["counterfactual"].get(cat, {})
                row.append(f"{fmt(c.get('sentiment_gap'), 2)} / {fmt(c.get('refusal_gap'), 2)}")
            rows.append(row)
        parts += ["", "Counterfactual swaps, gap between groups:", "", _md_table(header, rows)]
    return "\n".join(parts) + "\n"


def comparison_table(results: dict[str, Any]) -> Table:
    table = Table(title=f"eval: {results['dataset']['path']} ({results['chain']} chain)")
    table.add_column("")
    for name in results["models"]:
        table.add_column(name, justify="right")
    for label, cells in summary_rows(results):
        table.add_row(label, *cells)
    return table


def bias_tables(results: dict[str, Any]) -> list[Table]:
    bias = results.get("bias")
    if not bias:
        return []
    bbq = Table(title="BBQ probes: accuracy and bias scores per category (0 = unbiased)")
    bbq.add_column("category")
    for name in bias["models"]:
        for col in ("acc", "S_DIS", "S_AMB"):
            bbq.add_column(f"{name} {col}", justify="right")
    cats = list(next(iter(bias["models"].values()))["bbq"])
    for cat in cats:
        cells = []
        for data in bias["models"].values():
            c = data["bbq"].get(cat, {})
            cells += [fmt(c.get("accuracy"), 2), fmt(c.get("s_dis"), 2), fmt(c.get("s_amb"), 2)]
        bbq.add_row(cat, *cells)
    swap = Table(title="Counterfactual swaps per group: refusal, sentiment, toxicity, divergence")
    swap.add_column("category / group")
    for name in bias["models"]:
        swap.add_column(f"{name} ref/sent/tox/div", justify="right")
    first = next(iter(bias["models"].values()))["counterfactual"]
    for cat, data in first.items():
        for group in data["groups"]:
            cells = []
            for m in bias["models"].values():
                g = m["counterfactual"].get(cat, {}).get("groups", {}).get(group)
                cells.append(
                    "—"
                    if g is None
                    else f"{fmt(g['refusal_rate'], 2)} / {fmt(g['sentiment'], 2)} / "
                    f"{fmt(g['toxicity_rate'], 2)} / {fmt(g['divergence'], 2)}"
                )
            swap.add_row(f"{cat} / {group}", *cells)
    return [bbq, swap]


# -- plots -------------------------------------------------------------------------------------


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    # No date in the metadata: the same results render the same file.
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.find("<svg") :]


def _plots(results: dict[str, Any]) -> dict[str, str]:
    matplotlib: Any = require("matplotlib")
    figure: Any = require("matplotlib.figure")
    plots: dict[str, str] = {}
    models = results["models"]
    names = list(models)
    colors = [f"C{i}" for i in range(len(names))]
    # Text stays text in the SVG: smaller, sharper and searchable.
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        fig = figure.Figure(figsize=(5, 3.4))
        ax = fig.add_subplot()
        plotted = False
        xmax = 0.0
        for name, color in zip(names, colors, strict=True):
            agg = models[name]["aggregates"]
            x, y = agg["latency"]["total_s_p50"], agg["score"]["mean"]
            if x is None or y is None:
                continue
            plotted = True
            xmax = max(xmax, x)
            ax.scatter([x], [y], s=60, color=color, label=name)
            if results["repeat"] > 1:
                ax.errorbar([x], [y], yerr=[[y - agg["score"]["min"]], [agg["score"]["max"] - y]],
                            color=color, capsize=3)  # fmt: skip
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4))
        ax.set_xlabel("latency: total per answer, p50 (s)")
        ax.set_ylabel("quality: mean score")
        ax.set_ylim(-0.02, 1.02)
        # Room on the right for the last point's label.
        ax.set_xlim(0, xmax * 1.3 or 1.0)
        ax.grid(alpha=0.3)
        ax.set_title("quality against latency (up and left is better)")
        if plotted:
            plots["quality_latency"] = _svg(fig)

        tags = sorted({t for v in models.values() for t in v["aggregates"]["per_tag"]})
        if tags:
            fig = figure.Figure(figsize=(max(5.0, 0.9 * len(tags) * len(names)), 3.4))
            ax = fig.add_subplot()
            width = 0.8 / len(names)
            for i, (name, color) in enumerate(zip(names, colors, strict=True)):
                per_tag = models[name]["aggregates"]["per_tag"]
                xs = [j + i * width for j in range(len(tags))]
                ax.bar(xs, [per_tag.get(t, 0.0) for t in tags], width, label=name, color=color)
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(tags))], tags)
            ax.set_ylim(0, 1)
            ax.set_ylabel("mean score")
            ax.set_title("score per tag")
            ax.legend()
            ax.grid(axis="y", alpha=0.3)
            plots["per_tag"] = _svg(fig)

        bias = results.get("bias")
        if bias:
            cats = [c for c in next(iter(bias["models"].values()))["bbq"] if c != "all"]
            fig = figure.Figure(figsize=(max(5.0, 0.8 * len(cats) * len(names)), 3.4))
            axes = fig.subplots(1, 2, sharey=True)
            width = 0.8 / len(names)
            for ax, key, title in ((axes[0], "s_dis", "S_DIS (disambiguated)"),
                                   (axes[1], "s_amb", "S_AMB (ambiguous)")):  # fmt: skip
                for i, (name, color) in enumerate(zip(names, colors, strict=True)):
                    bbq = bias["models"][name]["bbq"]
                    vals = [bbq.get(c, {}).get(key) for c in cats]
                    xs = [j + i * width for j in range(len(cats))]
                    ax.bar(xs, [v or 0.0 for v in vals], width, label=name, color=color)
                    for x, v in zip(xs, vals, strict=True):
                        if v is None:
                            # No non-unknown answer: no score, which a zero bar would hide.
                            ax.text(x, 0.03, "n/a", ha="center", fontsize=7, rotation=90)
                ax.axhline(0, color="black", linewidth=0.8)
                ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cats))], cats, rotation=30)
                ax.set_ylim(-1, 1)
                ax.set_title(title)
                ax.grid(axis="y", alpha=0.3)
            axes[0].set_ylabel("bias score (0 = unbiased)")
            axes[1].legend()
            plots["bias"] = _svg(fig)
    return plots


# -- HTML --------------------------------------------------------------------------------------

# The page lives beside the probe sets, so it can be edited as HTML.
_TEMPLATE_FILE = "report.html.j2"


def card_table(results: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Model-card rows across the models: readable labels and units (models/card_view.py).

    The report is meant to be shared, so cards leave out paths on this machine; a model whose
    card could not be read gets its error in an "error" row.
    """
    names = list(results["models"])
    cards = [results["models"][n].get("card") or {} for n in names]
    per_model = [dict(card_rows(c, public=True)) if "error" not in c else {} for c in cards]
    labels = [label for label, _ in card_rows({}, public=True)]
    table = [(label, [m.get(label, "") for m in per_model]) for label in labels]
    if any("error" in c for c in cards):
        table.append(("error", [str(c.get("error", "")) for c in cards]))
    return table


def render_html(results: dict[str, Any]) -> str:
    jinja2: Any = require("jinja2")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    source = (resources.files("langdeploy.evaluate") / "data" / _TEMPLATE_FILE).read_text("utf-8")
    names = list(results["models"])
    bias = results.get("bias")
    bias_cats: list[str] = []
    swap_groups: list[tuple[str, list[str]]] = []
    if bias:
        first = next(iter(bias["models"].values()))
        bias_cats = list(first["bbq"])
        swap_groups = [(c, list(d["groups"])) for c, d in first["counterfactual"].items()]
    return str(
        env.from_string(source).render(
            r=results,
            names=names,
            rows=summary_rows(results),
            plots=_plots(results),
            card_rows=card_table(results),
            bias_cats=bias_cats,
            swap_groups=swap_groups,
            f=fmt,
        )
    )
