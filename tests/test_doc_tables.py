"""The tables of measured figures in README.md and docs/ are what their JSON renders.

bench/render_tables.py renders every table from bench/results/*.json; these tests
fail when a committed table differs from its JSON, when a table names a JSON or a
table that does not exist, or when prose carries a measured figure outside a table.
"""
import json
import os
import shutil
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))

import render_tables  # noqa: E402


def test_committed_documents_match_their_json():
    problems = render_tables.check(render_tables.documents())
    assert problems == [], "\n".join(problems)


def test_every_results_file_is_rendered_somewhere_and_has_provenance():
    text = "".join(open(path).read() for path in render_tables.documents())
    names = {m.group("name") for m in render_tables.BLOCK.finditer(text)}
    used = {name.partition("/")[0] for name in names}
    for name in names:
        if name in render_tables.COMBINED:
            used.update(render_tables.COMBINED[name][0])
    for path in os.listdir(render_tables.RESULTS):
        stem = path[:-len(".json")]
        assert stem in used, f"bench/results/{path} backs no table"
        data = render_tables.load(stem)
        stamps = ([t for t in data["tables"].values()] if "tables" in data
                  else [data["provenance"]])
        for stamp in stamps:
            assert {"date", "machine", "command"} <= set(stamp), f"{path}: provenance incomplete"


@pytest.fixture
def results_copy(tmp_path, monkeypatch):
    """A copy of bench/results the test may change, and a document using one of its tables."""
    results = tmp_path / "results"
    shutil.copytree(render_tables.RESULTS, results)
    monkeypatch.setattr(render_tables, "RESULTS", str(results))
    doc = tmp_path / "doc.md"
    doc.write_text("Intro.\n\n<!-- table: stages-full/stages -->\nstale\n"
                   "<!-- end table -->\n\nEnd.\n")
    return results, doc


def test_rendering_fills_a_block_and_then_the_check_passes(results_copy):
    _, doc = results_copy
    problems = render_tables.check([str(doc)])
    assert len(problems) == 1 and "table stages-full/stages differs from its JSON" in problems[0]
    assert render_tables.main([str(doc)]) == 0
    text = doc.read_text()
    assert "| `trainer train` |" in text and "*Measured " in text
    assert render_tables.check([str(doc)]) == []
    assert render_tables.main(["--check", str(doc)]) == 0


def test_a_changed_figure_in_the_json_fails_the_check(results_copy):
    results, doc = results_copy
    render_tables.main([str(doc)])
    path = results / "stages-full.json"
    data = json.loads(path.read_text())
    data["train"]["seconds"] += 1.0
    path.write_text(json.dumps(data))
    assert render_tables.main(["--check", str(doc)]) == 1
    assert any("stages-full/stages differs" in p for p in render_tables.check([str(doc)]))


def test_a_figure_typed_into_a_table_by_hand_fails_the_check(results_copy):
    _, doc = results_copy
    render_tables.main([str(doc)])
    doc.write_text(doc.read_text().replace("| `trainer train` |", "| `trainer train` | 1.0 s |", 1))
    assert render_tables.check([str(doc)]) != []


def test_a_missing_json_or_table_is_named(results_copy):
    _, doc = results_copy
    doc.write_text("<!-- table: nowhere/x -->\n<!-- end table -->\n"
                   "<!-- table: decisions/no-such-table -->\n<!-- end table -->\n")
    problems = render_tables.check([str(doc)])
    assert any("bench/results/nowhere.json does not exist" in p for p in problems)
    assert any("has no table 'no-such-table'" in p for p in problems)


@pytest.mark.parametrize("line", [
    "The demo scores 0.518 on the test set.",
    "Training took 69.5 s on two cores.",
    "Its peak was 1,885 MB.",
    "The worst ratio is 3.40x the peer.",
    "It predicts 8,347 windows/s.",
])
def test_a_measured_figure_in_prose_is_flagged(line):
    assert render_tables.stray_figures(f"# Title\n\n{line}\n") == [line]


@pytest.mark.parametrize("line", [
    "Windows of 4-s, frames of 0.25-s and `--window 1024` are settings.",
    "The real train.csv holds 4,867,422 rows of 9 crews at 256 Hz.",
    "Run `python bench/bench_quality.py --scale 0.1` to reproduce it.",
])
def test_settings_and_facts_are_not_flagged(line):
    assert render_tables.stray_figures(f"{line}\n") == []


def test_figures_inside_tables_and_code_are_not_flagged():
    text = ("<!-- table: a/b -->\n| 0.518 | 12.5 s |\n<!-- end table -->\n"
            "```sh\ntime: 12.5 s\n```\n")
    assert render_tables.stray_figures(text) == []


def test_a_ledger_row_of_the_wrong_length_is_an_error():
    with pytest.raises(render_tables.TableError, match="2 cells for 3 columns"):
        render_tables.markdown_table(["a", "b", "c"], [["1", "2"]])
