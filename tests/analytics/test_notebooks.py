"""The notebooks: committed without outputs, and run top to bottom on a generated history."""

import datetime as dt
import sys
from pathlib import Path

import duckdb
import nbformat
import pytest
from nbclient import NotebookClient

from pipelines.cluster.parquet import DAY_COLUMN, export_due
from pipelines.demo import history
from pipelines.store import Store

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_there_are_the_four_notebooks():
    assert [p.name for p in ALL] == ["01_lookup_hit_rate.ipynb", "02_lookup_latency.ipynb", "03_click_to_call.ipynb",
                                     "04_after_the_call.ipynb"]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_committed_notebooks_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {i} has outputs"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")  # the question
    assert nb.cells[1].cell_type == "code" and "DB_PATH" in nb.cells[1].source and "HUB_URL" in nb.cells[1].source


def run(nb, env_path: Path):
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(env_path)}}).execute()
    return nb


def test_the_kernel_is_this_python():
    """ipykernel's 'python3' kernel spec in the venv starts the venv's own interpreter."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.executable)")])
    out = run(nb, NOTEBOOKS).cells[0].outputs[0]["text"].strip()
    assert Path(out).resolve() == Path(sys.executable).resolve()


def conclusion(nb) -> str:
    """The computed 'what the data says' of an executed notebook (its last code cell)."""
    said = [o["data"]["text/markdown"] for o in nb.cells[-2].outputs if "text/markdown" in o.get("data", {})]
    return said[0] if said else ""


def generated(path: Path) -> Path:
    history.generate(path, days=21, calls_per_day=800, seed=11, end=dt.date(2026, 11, 22))
    return path


def exported(db: Path, folder: Path) -> Path:
    """The history's daily Parquet files, as the recorder writes them."""
    store = Store(db).open()
    try:
        assert export_due(store, folder, dt.date(2026, 11, 22))
    finally:
        store.close()
    return folder


def code_cell(nb, marker: str):
    return next(c for c in nb.cells if c.cell_type == "code" and marker in c.source)


def printed(nb, marker: str) -> str:
    """What the code cell containing ``marker`` printed."""
    return "".join(o.get("text", "") for o in code_cell(nb, marker).outputs if o.get("output_type") == "stream")


def test_every_notebook_runs_top_to_bottom_on_a_generated_history(tmp_path, monkeypatch):
    db = generated(tmp_path / "history.duckdb")
    monkeypatch.setenv("CALLPOP_DB_PATH", str(db))
    monkeypatch.setenv("CALLPOP_HUB_URL", "")  # never a hub that happens to run on this machine
    monkeypatch.setenv("ANALYTICS_DAYS", "21")
    monkeypatch.setenv("CALLPOP_PARQUET_DIR", str(exported(db, tmp_path / "parquet")))
    for path in ALL:
        nb = run(nbformat.read(path, as_version=4), NOTEBOOKS)  # raises CellExecutionError on any error
        assert conclusion(nb).startswith("- From 01 Nov 2026 to 21 Nov 2026"), f"{path.name} said nothing at the end"
        assert any("plotly" in "".join(o.get("data", {})) for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs), f"{path.name} drew no chart"
        if path.name.startswith("01_"):  # the Parquet cell read the files: every call of the range
            with duckdb.connect(str(db), read_only=True) as con:
                calls = con.execute("SELECT count(*) FROM calls WHERE started_at >= '2026-11-01' "
                                    "AND started_at < '2026-11-22'").fetchone()[0]
            assert f"Read {calls:,} calls of 01 Nov 2026 to 21 Nov 2026" in printed(nb, "read_parquet")
            held = code_cell(nb, "read_parquet").outputs[0]["data"]["text/plain"]
            assert all(table in held for table in DAY_COLUMN)  # a line per table


def test_a_notebook_says_the_same_through_a_running_hub_and_from_the_stopped_file(start_hub, tmp_path, monkeypatch):
    db = generated(tmp_path / "callpop.duckdb")  # the file the hub opens
    hub = start_hub()
    monkeypatch.setenv("CALLPOP_DB_PATH", str(db))
    monkeypatch.setenv("CALLPOP_HUB_URL", hub.url)
    monkeypatch.setenv("CALLPOP_TOKEN", "demo-token-dana")
    monkeypatch.setenv("ANALYTICS_DAYS", "21")
    monkeypatch.setenv("CALLPOP_PARQUET_DIR", "")  # none: the notebook says so and goes on
    first = run(nbformat.read(ALL[0], as_version=4), NOTEBOOKS)
    assert "via hub" in first.cells[2].outputs[0]["text"]
    assert "CALLPOP_PARQUET_DIR is not set" in printed(first, "read_parquet")
    hub.stop()
    second = run(nbformat.read(ALL[0], as_version=4), NOTEBOOKS)
    assert "via file" in second.cells[2].outputs[0]["text"]
    assert conclusion(first) == conclusion(second) != ""
