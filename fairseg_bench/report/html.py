"""One self-contained ``index.html``: tables, figures embedded as base64 PNG, and the run configs.

Nothing on the page refers to another file or a server: styles are inline, images are ``data:``
URIs, so the page opens from disk (or as a CI artefact) as it is.
"""
from __future__ import annotations

import base64
from pathlib import Path

import jinja2

from fairseg_bench.results.read import Results
from fairseg_bench.results.summary import Summary

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
 body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1300px;
        padding: 0 1rem; color: #1f2328; line-height: 1.45; }
 h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; margin-top: 2.2rem; }
 h3 { font-size: 1.05rem; margin-top: 1.6rem; }
 nav a { margin-right: 1rem; }
 .scroll { overflow-x: auto; }
 table.report-table { border-collapse: collapse; margin: .6rem 0; font-size: .82rem;
                      font-variant-numeric: tabular-nums; }
 table.report-table th, table.report-table td { border: 1px solid #d0d7de; padding: .25rem .45rem;
                                                text-align: right; white-space: nowrap; }
 table.report-table th { background: #f6f8fa; }
 table.report-table thead th[colspan] { text-align: center; }
 table.report-table tbody th { text-align: left; }
 table.meta td, table.meta th { text-align: left; padding: .15rem .8rem .15rem 0; vertical-align: top; }
 p.note { font-size: .82rem; color: #57606a; margin: .2rem 0; }
 figure { margin: 1.2rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
 figcaption { font-size: .85rem; color: #57606a; }
 details { margin: .3rem 0; } pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; font-size: .8rem; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<table class="meta">
{% for key, value in meta %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>
{% endfor %}</table>
<nav><a href="#tables">Tables</a><a href="#figures">Figures</a><a href="#configs">Run configs</a></nav>
<h2 id="tables">Tables</h2>
{% for table in tables %}<div class="scroll">{{ table | safe }}</div>
{% endfor %}
<h2 id="figures">Figures</h2>
{% for fig in figures %}<figure id="fig-{{ fig.name }}">
<img alt="{{ fig.caption }}" src="data:image/png;base64,{{ fig.data }}">
<figcaption>{{ fig.caption }}</figcaption></figure>
{% endfor %}
<h2 id="configs">Run configs</h2>
{% if not configs %}<p class="note">No run configs (the inputs were per-class IoU tables).</p>{% endif %}
{% for run in configs %}<details><summary>{{ run.label }} — <code>{{ run.source }}</code></summary>
<pre>{{ run.text }}</pre></details>
{% endfor %}
</body>
</html>
"""


def figure_png_base64(figure) -> str:
    """A figure (or its PNG bytes) as a base64 string for a ``data:`` URI."""
    from fairseg_bench.report.figures import png_bytes

    png = figure if isinstance(figure, bytes) else png_bytes(figure)
    return base64.b64encode(png).decode("ascii")


def _config_text(run) -> str:
    """The run's resolved config: its ``config.yaml`` if present, else the config in metrics.json."""
    import yaml

    folder = run.folder
    if folder is not None and (folder / "config.yaml").is_file():
        return (folder / "config.yaml").read_text()
    return yaml.safe_dump(run.record.get("config") or {}, sort_keys=False) or "(no config recorded)"


def _precisions(data: Results) -> str:
    """What the runs trained and evaluated in, e.g. ``bfloat16, native, on cpu (3 runs)``; '' if unrecorded."""
    counts: dict[str, int] = {}
    for run in data.runs:
        p = (run.record or {}).get("precision")
        if p:
            key = p["autocast"] + ("" if p["autocast"] == "float32" else (", native" if p["native"] else ", emulated"))
            key += f", on {p['device']}"
            counts[key] = counts.get(key, 0) + 1
    return "; ".join(f"{k} ({n} run{'s' if n != 1 else ''})" for k, n in counts.items())


def render_html(data: Results, summary: Summary, tables: list, figures: list[tuple[str, str, object]],
                title: str = "fairseg-bench report") -> str:
    """The page as a string.

    Args:
        data: the report's inputs (for the run configs).
        summary: the numbers (for the header facts).
        tables: :class:`~fairseg_bench.report.tables.Table` objects, in page order.
        figures: ``(name, caption, Figure or PNG bytes)`` triples, in page order.
        title: the page heading.
    """
    seeds = ", ".join(f"{m} ({n} seed{'s' if n != 1 else ''})" for m, n in summary.n_seeds.items())
    sources = sorted({str(r.source.parent if r.record else r.source) for r in data.runs})
    if len(sources) > 3:
        import os.path

        sources = [f"{len(sources)} runs under {os.path.commonpath(sources)}"]
    meta = [
        ("methods", seeds),
        ("reference", f"{summary.reference} (classes sorted by its seed-mean IoU)"),
        ("classes", f"{len(summary.classes)}: {', '.join(summary.classes)}"),
        ("intervals", summary.interval),
        ("inputs", "; ".join(sources)),
    ]
    precisions = _precisions(data)
    if precisions:
        meta.append(("precision", precisions))
    experiments = sorted({r.experiment for r in data.runs if r.experiment})
    if experiments:
        meta.insert(0, ("experiment", ", ".join(experiments)))
    configs = [
        {"label": f"{r.method} seed {r.seed}", "source": str(r.folder), "text": _config_text(r)}
        for r in data.runs if r.record
    ]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE).render(
        title=title, meta=meta, tables=[t.to_html() for t in tables],
        figures=[{"name": name, "caption": caption, "data": figure_png_base64(fig)} for name, caption, fig in figures],
        configs=configs,
    )


def write_html(path: str | Path, *args, **kwargs) -> Path:
    """Render the page and write it atomically to ``path``."""
    from fairseg_bench.results import write_atomic

    write_atomic(path, render_html(*args, **kwargs))
    return Path(path)
