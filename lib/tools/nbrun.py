"""Executes notebooks headlessly with nbclient and exports them to HTML.

Called by lib/tools/notebooks.ts (the Deno side); not meant to be run by hand.
For every notebook it writes `<out>/<name>.ipynb` (executed, outputs kept)
and `<out>/<name>.html`, then prints one line `@@result {json}` to stdout.
It stops at the first failing notebook: the series builds on itself.
"""
import argparse
import json
import os
import re
import sys
import time

from queue import Empty

import nbformat
from jupyter_core.utils import ensure_async
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete
from nbconvert import HTMLExporter


class LateOutputClient(NotebookClient):
    """An nbclient that also keeps outputs arriving just after `idle`.

    The Deno kernel (2.9) sometimes publishes a cell's `execute_result` after
    its `status: idle` message. nbclient stops listening for a cell at `idle`,
    so such a result would be lost (seen on about 1 cell in 40). After `idle`
    this client keeps reading the cell's messages until none has come for
    `late_output_grace` seconds.
    """

    late_output_grace = 0.25

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        await super()._async_poll_output_msg(parent_msg_id, cell, cell_index)
        while True:
            try:
                msg = await ensure_async(
                    self.kc.iopub_channel.get_msg(timeout=self.late_output_grace))
            except Empty:
                return
            if msg["parent_header"].get("msg_id") != parent_msg_id:
                continue
            if msg["msg_type"] == "status":
                continue
            try:
                self.process_message(msg, cell, cell_index)
            except CellExecutionComplete:
                pass


def write_atomic(path, text):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def first_line(source):
    for line in source.splitlines():
        if line.strip():
            return line.strip()[:120]
    return ""


PLOTLY_MIME = "application/vnd.plotly.v1+json"

# lib/tools/report_template/offline: JupyterLab's export page without the scripts
# it would fetch from cdnjs (require.js always, MathJax unless needed).
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report_template")
MATH = re.compile(r"\$\$|\\\(|\\\[|\\begin\{|(?<![\\$])\$[^\s$][^$\n]*\$")


def needs_mathjax(nb):
    """True if a Markdown cell holds TeX math ($...$, $$...$$, \\( \\), \\[ \\])."""
    return any(c.cell_type == "markdown" and MATH.search(c.source) for c in nb.cells)


def to_html(nb):
    """The notebook as one self-contained HTML page (see TEMPLATES)."""
    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[TEMPLATES])
    html, _ = exporter.from_notebook_node(nb, resources={"needs_mathjax": needs_mathjax(nb)})
    return html


def embed_plotly(html, nb, plotly_js):
    """Puts plotly.js into the page once, if any output is a Plotly figure."""
    uses = any(PLOTLY_MIME in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", []))
    if not uses or not plotly_js:
        return html
    with open(plotly_js, encoding="utf-8") as f:
        src = f.read().replace("</script", "<\\/script")
    # Shadow AMD/CommonJS so the bundle always defines window.Plotly.
    tag = ('<script type="text/javascript">(function (define, module, exports) {\n'
           + src + '\n}).call(window);</script>')
    return html.replace("</head>", tag + "\n</head>", 1)


def run_one(path, out_dir, kernel, timeout, plotly_js):
    nb = nbformat.read(path, as_version=4)
    state = {"cell": None}

    def on_cell_execute(cell, cell_index, **_):
        state["cell"] = cell_index
        print(f"  cell {cell_index + 1}/{len(nb.cells)}: {first_line(cell.source)}",
              file=sys.stderr, flush=True)

    client = LateOutputClient(
        nb,
        kernel_name=kernel,
        timeout=timeout,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
        on_cell_execute=on_cell_execute,
    )
    started = time.time()
    error = None
    try:
        client.execute()
    except Exception as exc:  # noqa: BLE001 - every failure is reported
        index = state["cell"]
        ename, evalue = type(exc).__name__, str(exc).strip().splitlines()[-1:] or [""]
        evalue = evalue[0]
        for i, cell in enumerate(nb.cells):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    index = i
                    ename = output.get("ename", ename)
                    evalue = output.get("evalue", evalue)
                    break
            else:
                continue
            break
        cell = nb.cells[index] if index is not None else None
        error = {
            "cell": None if index is None else index + 1,
            "source": first_line(cell.source) if cell is not None else "",
            "ename": ename,
            "evalue": evalue,
        }
    seconds = time.time() - started
    name = os.path.splitext(os.path.basename(path))[0]
    os.makedirs(out_dir, exist_ok=True)
    executed = os.path.join(out_dir, name + ".ipynb")
    write_atomic(executed, nbformat.writes(nb))
    html = embed_plotly(to_html(nb), nb, plotly_js)
    html_path = os.path.join(out_dir, name + ".html")
    write_atomic(html_path, html)
    return {
        "notebook": path,
        "executed": executed,
        "html": html_path,
        "seconds": round(seconds, 2),
        "cells": len(nb.cells),
        "ok": error is None,
        "error": error,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--kernel", default="deno")
    parser.add_argument("--timeout", type=int, default=3600)
    parser.add_argument("--plotly-js", default=None)
    parser.add_argument("notebooks", nargs="+")
    args = parser.parse_args()
    for path in args.notebooks:
        print(f"executing {path}", file=sys.stderr, flush=True)
        result = run_one(path, args.out, args.kernel, args.timeout, args.plotly_js)
        print("@@result " + json.dumps(result), flush=True)
        if not result["ok"]:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
