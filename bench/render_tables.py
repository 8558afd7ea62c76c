"""Renders every table of measured figures in the READMEs and docs/ from bench/results/*.json.

    python bench/render_tables.py            # rewrite the tables in place
    python bench/render_tables.py --check    # exit 1 if a committed table differs

A table sits in the markdown between two markers, and its body is this script's
output, never typed by hand:

    <!-- table: quality/summary -->
    ...
    <!-- end table -->

`NAME/TABLE` names a JSON file, bench/results/NAME.json, and a table in it.  A file
holding "tables" (a ledger: columns and rows of strings, with the machine, date and
command of each table) renders generically; the other files are bench scripts'
own JSON (with their "provenance", bench/provenance.py) and render through the
functions registered in RENDERERS for the script that wrote them.  A few tables
(COMBINED) draw on several files.  Each table ends with a line saying
where, when and how it was measured.  `--check` also lists measured-looking figures
(log losses, times, sizes, ratios) in prose outside the tables: a figure no JSON
backs.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
from typing import Callable, Optional

import bench_preprocess
import bench_quality

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results")
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w./-]+) -->\n)(?P<body>.*?)(<!-- end table -->)",
                   re.DOTALL)
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
# A measured figure: a log loss (0.518: three decimals, so versions such as 2.21 and
# settings such as 0.25 pass), a ratio (3.40x), a time, a size, a rate.
FIGURE = re.compile(r"(?<![\w.`/-])(\d[\d,]*\.\d{3,}(?![\d.-])|\d[\d,]*(\.\d+)?x\b"
                    r"|\d[\d,]*(\.\d+)? ?(s|min|ms|MB|GB|KB|GiB|MiB)\b(?!-)"
                    r"|\d[\d,]*(\.\d+)? (rows|windows|steps)/s)")


class TableError(Exception):
    """A table that cannot be rendered: its JSON or its table is missing, or malformed."""


def provenance_line(p: dict) -> str:
    commit = f" at commit {p['commit']}" if p.get("commit") else ""
    note = f" {p['note']}" if p.get("note") else ""
    return f"*Measured {p['date']} on {p['machine']}{commit}: `{p['command']}`.{note}*"


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        if len(row) != len(columns):
            raise TableError(f"a row has {len(row)} cells for {len(columns)} columns: {row}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def ledger(data: dict, table: str) -> str:
    t = data["tables"][table]
    return markdown_table(t["columns"], t["rows"]) + "\n\n" + provenance_line(t)


def quality_summary(data: dict) -> str:
    return bench_quality.table(data, data["judged"]) + "\n\n" + provenance_line(data["provenance"])


def hardest_per_class(data: dict) -> str:
    """Per-class test log loss where the LSTM's ratio to the peer is worst."""
    worst = data["verdict"]["worst_lstm_over_peer"]
    result = data["physiologies"][worst["physiology"]]["schemes"][worst["validation"]]
    judged = data["judged"]
    classes = list(result["peer"]["per_class_log_loss"])
    runs = [run["test"][judged]["per_class_log_loss"] for run in result["lstm_runs"]]
    lstm = [f"{sum(run[c] for run in runs) / len(runs):.2f}" for c in classes]
    balanced_prior = "none" if "none" in result["lstm"] else judged
    rows = [["LSTM, predict's defaults (mean of the seeds)", *lstm,
             f"{result['lstm'][balanced_prior]['balanced_log_loss']['mean']:.3f}"],
            ["peer", *[f"{result['peer']['per_class_log_loss'][c]:.2f}" for c in classes],
             f"{result['peer']['balanced_log_loss']:.3f}"]]
    return (markdown_table([f"`{worst['physiology']}`, {worst['validation']}", *classes,
                            "balanced test log loss (LSTM: `--prior none`)"], rows)
            + "\n\n" + provenance_line(data["provenance"]))


def preprocess_runs(data: dict) -> str:
    runs = {(r["engine"], r["split"], r["scale"]): r for r in data["runs"]}
    return bench_preprocess.markdown(runs) + "\n\n" + provenance_line(data["provenance"])


def _mb(value: float) -> str:
    return f"{value:,.0f} MB"


def stages(data: dict) -> str:
    train, predict, score = data["train"], data["predict"], data["score"]
    rows = [["`trainer train`", f"{train['seconds']:,} s", _mb(train["peak_rss_mb"]),
             f"exported epoch {train['exported_epoch']} ({train['steps']:,} steps); balanced "
             f"validation log loss {train['valid_balanced_log_loss']:.3f}"],
            ["`trainer predict`", f"{predict['seconds']:,} s", _mb(predict["peak_rss_mb"]),
             f"{predict['rows']:,} rows ({predict['rows_per_second']:,} rows/s), "
             f"{predict['windows']:,} windows; model {predict['model_windows_per_second']:,} "
             f"windows/s"],
            ["`trainer score`", f"{score['seconds']:,} s", _mb(score["peak_rss_mb"]),
             f"test log loss **{score['log_loss']:.3f}** "
             f"(balanced {score['balanced_log_loss']:.3f})"]]
    if "peer" in data:
        peer = data["peer"]
        rows.append(["`bench/peer_gbm.py`", f"{peer['seconds']:,} s", _mb(peer["peak_rss_mb"]),
                     f"test log loss **{peer['log_loss']:.3f}** (balanced "
                     f"{peer['balanced_log_loss']:.3f}); constant training prior "
                     f"{peer['constant_log_loss']:.3f}"])
    return (markdown_table(["stage", "wall time", "peak memory", "result"], rows) + "\n\n"
            + provenance_line(data["provenance"]))


def demo(data: dict) -> str:
    s = data["scores"]
    rows = [["`make demo`, end to end", f"{data['seconds']:,} s", _mb(data["peak_rss_mb"]), ""]]
    rows += [[name, "", "", f"test log loss **{s[key]['log_loss']:.3f}** (balanced "
              f"{s[key]['balanced_log_loss']:.3f})"]
             for key, name in (("lstm", "the LSTM (`trainer predict`)"),
                               ("peer", "the peer (`bench/peer_gbm.py`)"),
                               ("constant", "the constant training prior"))]
    return (markdown_table(["what", "wall time", "peak memory", "result"], rows) + "\n\n"
            + provenance_line(data["provenance"]))


def headline(sources: dict[str, dict]) -> str:
    """The README's one short table: the demo, each stage at full scale, model quality."""
    demo_run, full, pre, quality = (sources[k] for k in ("demo", "stages-full", "preprocess",
                                                         "quality"))
    beam = {r["split"]: r for r in pre["runs"] if r["engine"] == "beam" and r["scale"] == 1.0}
    worst = quality["verdict"]["worst_lstm_over_peer"]
    s = demo_run["scores"]
    rows = [
        ["`make demo` (every stage, small data)", f"{demo_run['seconds']:,} s",
         _mb(demo_run["peak_rss_mb"]),
         f"LSTM {s['lstm']['log_loss']:.3f}, peer {s['peer']['log_loss']:.3f}, "
         f"constant {s['constant']['log_loss']:.3f}"],
        *[[f"preprocess full-scale `{split}.csv`", f"{r['seconds']:,} s", _mb(r["peak_rss_mb"]),
           f"{r['rows_in']:,} rows, {r['rows_per_s']:,} rows/s"]
          for split, r in sorted(beam.items(), reverse=True)],
        ["train at full scale", f"{full['train']['seconds']:,} s",
         _mb(full["train"]["peak_rss_mb"]), f"exported epoch {full['train']['exported_epoch']}"],
        ["predict full-scale test", f"{full['predict']['seconds']:,} s",
         _mb(full["predict"]["peak_rss_mb"]),
         f"LSTM {full['score']['log_loss']:.3f}"
         + (f", peer {full['peer']['log_loss']:.3f}, "
            f"constant {full['peer']['constant_log_loss']:.3f}"
            if "peer" in full else "")],
        ["model quality, worst case over 5 physiologies x 2 validations", "", "",
         f"LSTM / peer **{worst['ratio']:.2f}x** ({worst['physiology']}, {worst['validation']})"],
    ]
    dates = sorted({d["provenance"]["date"] for d in sources.values()})
    machines = sorted({d["provenance"]["machine"] for d in sources.values()})
    return (markdown_table(["what", "wall time", "peak memory", "result (test log loss)"], rows)
            + f"\n\n*Measured {' to '.join([dates[0], dates[-1]][:len(dates)])} on "
            f"{'; '.join(machines)}; each row's command is in "
            "[docs/benchmarks.md](docs/benchmarks.md).*")


def windows(sources: dict[str, dict]) -> str:
    """The quality bench at the previous default window against today's: the LSTM's
    test log loss per physiology and validation, and the worst ratios to the peer."""
    before, now = sources["quality-window-1024"], sources["quality"]
    schemes = now["schemes"]
    columns = ["physiology"] + [f"{scheme}: {label}" for scheme in schemes
                                for label in ("4-s windows", "**8-s windows**")]

    def cell(result: dict) -> str:
        loss = result["lstm"][now["judged"]]["log_loss"]
        return f"{loss['mean']:.3f} ± {loss['sd']:.3f} ({result['ratios']['lstm_over_peer']:.2f}x)"
    rows = [[name] + [cell(q["physiologies"][name]["schemes"][scheme])
                      for scheme in schemes for q in (before, now)]
            for name in now["physiologies"]]
    worst = [f"**{q['verdict']['worst_lstm_over_peer']['ratio']:.2f}x** "
             f"({q['verdict']['worst_lstm_over_peer']['physiology']}, "
             f"{q['verdict']['worst_lstm_over_peer']['validation']})" for q in (before, now)]
    rows.append(["worst LSTM / peer, over both validations"] + [worst[0], worst[1]]
                + [""] * (len(columns) - 3))
    return (markdown_table(columns, rows) + "\n\nEach cell: the LSTM's overall test log loss "
            "under predict's defaults, mean ± sd over the seeds, and its ratio to the peer "
            "fitted on the same data.\n\n" + provenance_line(before["provenance"]) + "\n\n"
            + provenance_line(now["provenance"]))


# The tables of a bench script's JSON, by the script that wrote it (its provenance's
# command): {script: {TABLE: render(json)}}.
RENDERERS: dict[str, dict[str, Callable[[dict], str]]] = {
    "bench_quality.py": {"summary": quality_summary, "hardest-per-class": hardest_per_class},
    "bench_preprocess.py": {"runs": preprocess_runs},
    "bench_stages.py": {"stages": stages},
    "bench_demo.py": {"scores": demo},
}
# Tables drawn from several files: name -> (files, render(files' JSON by name)).
COMBINED: dict[str, tuple[tuple[str, ...], Callable[[dict], str]]] = {
    "readme/headline": (("demo", "stages-full", "preprocess", "quality"), headline),
    "quality/windows": (("quality-window-1024", "quality"), windows),
}


def script_of(data: dict) -> str:
    """The bench script that wrote a result: 'bench_quality.py'."""
    words = data.get("provenance", {}).get("command", "").split()
    return os.path.basename(words[1]) if len(words) > 1 else ""


def load(name: str) -> dict:
    path = os.path.join(RESULTS, name + ".json")
    if not os.path.exists(path):
        raise TableError(f"bench/results/{name}.json does not exist")
    with open(path) as f:
        return json.load(f)


def render(name: str) -> str:
    """The body of table NAME/TABLE, from its JSON."""
    if name in COMBINED:
        files, render_fn = COMBINED[name]
        return render_fn({file: load(file) for file in files})
    file, _, table = name.partition("/")
    data = load(file)
    if "tables" in data:
        if table not in data["tables"]:
            raise TableError(f"bench/results/{file}.json has no table {table!r}")
        return ledger(data, table)
    script = script_of(data)
    if table not in RENDERERS.get(script, {}):
        raise TableError(f"no table {table!r} for bench/results/{file}.json, written by "
                         f"{script or 'an unknown script'} (bench/render_tables.py RENDERERS)")
    return RENDERERS[script][table](data)


def rendered(text: str, problems: list[str]) -> str:
    """TEXT with every table block's body replaced by its rendering; a table that
    cannot be rendered keeps its body, and what stops it goes to `problems`."""
    def replace(match: re.Match) -> str:
        try:
            return match.group(1) + render(match.group("name")) + "\n" + match.group(4)
        except TableError as err:
            problems.append(f"table {match.group('name')}: {err}")
            return match.group(0)
    return BLOCK.sub(replace, text)


def stray_figures(text: str) -> list[str]:
    """Measured-looking figures outside the table blocks and code: lines quoted."""
    prose = FENCE.sub("", BLOCK.sub("", text))
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return [line.strip() for line in prose.splitlines() if FIGURE.search(line)]


def documents() -> list[str]:
    return ([os.path.join(REPO, "README.md"), os.path.join(REPO, "infra", "README.md")]
            + sorted(glob.glob(os.path.join(REPO, "docs", "*.md"))))


def check(paths: list[str]) -> list[str]:
    """What is wrong with the committed documents: tables that differ from their JSON,
    figures outside tables."""
    problems = []
    for path in paths:
        with open(path) as f:
            text = f.read()
        where = os.path.relpath(path, REPO)
        for match in BLOCK.finditer(text):
            try:
                if match.group("body") != render(match.group("name")) + "\n":
                    problems.append(f"{where}: table {match.group('name')} differs from its JSON")
            except TableError as err:
                problems.append(f"{where}: table {match.group('name')}: {err}")
        problems += [f"{where}: a figure outside a table: {line}" for line in stray_figures(text)]
    return problems


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 and list what differs")
    parser.add_argument("paths", nargs="*",
                        help="markdown files (default README.md, infra/README.md, docs/*.md)")
    args = parser.parse_args(argv)
    paths = args.paths or documents()
    if args.check:
        problems = check(paths)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("render_tables: run `python bench/render_tables.py` to re-render the tables; "
                  "move figures in prose into a table of bench/results/", file=sys.stderr)
        return 1 if problems else 0
    failed = False
    for path in paths:
        with open(path) as f:
            text = f.read()
        problems: list[str] = []
        new = rendered(text, problems)
        for problem in problems:
            print(f"render_tables: {os.path.relpath(path, REPO)}: {problem}", file=sys.stderr)
        failed = failed or bool(problems)
        if new != text:
            with open(path, "w") as f:
                f.write(new)
            print(f"rendered {os.path.relpath(path, REPO)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
