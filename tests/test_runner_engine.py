"""Tests for the warm-kernel batch runner (pophealth.runner).

The notebooks are written by the tests: pandas + plotly figures displayed as a mimebundle
(text/html without plotly.js + application/vnd.plotly.v1+json) after a `parameters` cell,
like the project's real papermill notebooks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from pophealth.runner import ProfileJob, run_profiles, safe_stem
from pophealth.runner.jobs import job_fingerprint, outputs_up_to_date

REPO = Path(__file__).resolve().parents[1]

FIGURES = """\
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from IPython.display import display

def show(fig):
    display({"text/html": fig.to_html(full_html=False, include_plotlyjs=False),
             "application/vnd.plotly.v1+json": fig.to_plotly_json()}, raw=True)

rng = np.random.default_rng(abs(hash(area_code)) % 2**32)
frame = pd.DataFrame({"age": np.arange(0, 95, 5), "patients": rng.integers(50, 500, 19)})
show(go.Figure(go.Bar(x=frame["age"], y=frame["patients"]), layout_title_text=area_code))
"""


def write_notebook(path: Path, cells: list[str], parameters: str = "area_code = 'X'\n") -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    parameter_cell = new_code_cell(parameters)
    parameter_cell.metadata["tags"] = ["parameters"]
    nb.cells = [new_markdown_cell("# Test profile"), parameter_cell]
    nb.cells += [new_code_cell(textwrap.dedent(source)) for source in cells]
    nbformat.write(nb, path)
    return path


def make_job(notebook: Path, code: str, level: str = "neighbourhood", name=None, **params):
    return ProfileJob(
        key=f"{level}/{code}",
        area_code=code,
        area_name=name or f"Area {code}",
        level=level,
        notebook=notebook,
        parameters={"area_code": code, **params},
        headline={"Registered patients": f"{len(code) * 1234:,}"},
        input_fingerprint="data-v1",
    )


# a cell that kills its kernel the first time it runs (the marker file says it did)
DIE_ONCE = """
import os, pathlib
marker = pathlib.Path(marker_path)
if not marker.exists():
    marker.write_text("died once")
    os._exit(1)
"""
DIE_ONCE_PARAMETERS = "area_code = 'X'\nmarker_path = ''\n"

# The first code cell after the markdown (0), parameters (1) and injected-parameters (2) cells.
FIRST_BODY_CELL = 3


# --------------------------------------------------------------------------- fast unit tests
def test_safe_stem_keeps_clean_codes_and_hashes_anything_changed():
    assert safe_stem("U12345") == "U12345"
    assert safe_stem("E38000001") == "E38000001"
    risky = safe_stem("../../etc")
    assert risky.startswith("etc-") and len(risky) == len("etc-") + 8
    assert safe_stem("../etc") != safe_stem("../../etc")
    assert set(safe_stem("<script>alert(1)</script>")) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
    )
    assert safe_stem("").startswith("x-")
    assert len(safe_stem("A" * 500)) <= 80 + 9


def test_fingerprint_changes_with_each_input():
    base = job_fingerprint(b"nb", {"a": 1}, "1.0", "data")
    assert base == job_fingerprint(b"nb", {"a": 1}, "1.0", "data")
    assert base != job_fingerprint(b"nb2", {"a": 1}, "1.0", "data")
    assert base != job_fingerprint(b"nb", {"a": 2}, "1.0", "data")
    assert base != job_fingerprint(b"nb", {"a": 1}, "1.1", "data")
    assert base != job_fingerprint(b"nb", {"a": 1}, "1.0", "data2")


def test_bad_jobs_are_rejected_before_any_kernel_starts(tmp_path):
    notebook = write_notebook(tmp_path / "nb.ipynb", ["x = 1"])
    job = make_job(notebook, "A1")
    with pytest.raises(ValueError, match="Duplicate job key"):
        run_profiles([job, job], tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="same file"):
        run_profiles(
            [job, ProfileJob("other", "A1", "x", "neighbourhood", notebook, {}, {}, "")],
            tmp_path / "out",
            progress=False,
        )
    with pytest.raises(TypeError, match="JSON-serialisable"):
        run_profiles([make_job(notebook, "A2", when=object())], tmp_path / "out", progress=False)
    with pytest.raises(FileNotFoundError, match="missing.ipynb"):
        run_profiles([make_job(tmp_path / "missing.ipynb", "A3")], tmp_path / "o", progress=False)


# --------------------------------------------------------------------------- one warm kernel
@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    """One worker (so every job shares ONE kernel, in order) through the awkward cases."""
    base = tmp_path_factory.mktemp("mixed")
    leaker = write_notebook(
        base / "leaker.ipynb",
        [FIGURES, "leaked_value = 42\nglobals()['leaked_global'] = 'from A'\n"],
    )
    checker = write_notebook(
        base / "checker.ipynb",
        [
            FIGURES,
            """
            assert "leaked_value" not in globals(), "namespace leaked from the previous notebook"
            assert "leaked_global" not in globals(), "global leaked from the previous notebook"
            assert "frame" in globals()
            """,
        ],
    )
    sleeper = write_notebook(base / "sleeper.ipynb", ["x = 1", "import time\ntime.sleep(120)"])
    die_once = write_notebook(
        base / "die_once.ipynb", [DIE_ONCE, FIGURES], parameters=DIE_ONCE_PARAMETERS
    )
    # dies while the cell runs, as a real crash does: a kernel that exits the instant the cell
    # starts can take its last IOPub messages (earlier cells' ends) with it, and the run then
    # names the last cell it heard of
    always_dies = write_notebook(
        base / "always_dies.ipynb", ["import os, time\ntime.sleep(0.5)\nos._exit(1)"]
    )
    jobs = [
        make_job(leaker, "A1"),
        make_job(checker, "B2"),
        make_job(sleeper, "SLOW"),
        make_job(checker, "AFTER"),
        make_job(die_once, "DIE1", marker_path=str(base / "marker")),
        make_job(always_dies, "DEAD"),
        make_job(leaker, "../../etc", level="place", name="<script>alert(1)</script> & Co"),
    ]
    started = time.perf_counter()
    summary = run_profiles(
        jobs, base / "out", workers=1, timeout=5, progress=False, run_info={"caller": "test"}
    )
    return summary, jobs, time.perf_counter() - started


def _executed(result) -> nbformat.NotebookNode:
    return nbformat.read(result.ipynb_path, as_version=4)


@pytest.mark.slow
def test_namespace_is_reset_between_notebooks_on_one_kernel(mixed_run):
    summary, _, _ = mixed_run
    results = summary.by_key()
    # B ran right after A on the same kernel (workers=1, job order kept): without
    # reset(new_session=True) B's asserts fail, and its execution counts would continue
    # from A's instead of starting at 1.
    assert results["neighbourhood/A1"].status == "ok"
    assert results["neighbourhood/B2"].status == "ok", results["neighbourhood/B2"]
    for key in ("neighbourhood/A1", "neighbourhood/B2", "neighbourhood/AFTER"):
        nb = _executed(results[key])
        counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
        assert counts == list(range(1, len(counts) + 1)), (key, counts)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and nb.cells.index(injected[0]) == 2
        assert nb.metadata.papermill.parameters["area_code"] == results[key].area_code


@pytest.mark.slow
def test_timeout_fails_that_job_and_the_worker_recovers(mixed_run):
    summary, _, _ = mixed_run
    slow = summary.by_key()["neighbourhood/SLOW"]
    assert slow.status == "failed"
    assert slow.error_ename == "TimeoutError"
    assert "timed out" in slow.error_message and "5 s" in slow.error_message
    assert slow.error_cell_index == FIRST_BODY_CELL + 1
    assert slow.html_path is None and slow.failed_ipynb_path.is_file()
    assert summary.by_key()["neighbourhood/AFTER"].status == "ok"


@pytest.mark.slow
def test_dead_kernel_is_replaced_and_job_retried_once(mixed_run):
    summary, _, _ = mixed_run
    once = summary.by_key()["neighbourhood/DIE1"]
    assert once.status == "ok" and once.attempts == 2
    assert "js-plotly-plot" in once.html_path.read_text() or "plotly-graph-div" in (
        once.html_path.read_text()
    )
    always = summary.by_key()["neighbourhood/DEAD"]
    assert always.status == "failed" and always.attempts == 2
    assert always.error_ename == "DeadKernelError"
    assert always.error_cell_index == FIRST_BODY_CELL
    # the job after the dead kernels ran fine on the replacement kernel
    assert summary.by_key()["place/../../etc"].status == "ok"


@pytest.mark.slow
def test_failed_jobs_keep_only_a_failed_notebook(mixed_run):
    summary, _, _ = mixed_run
    for key in ("neighbourhood/SLOW", "neighbourhood/DEAD"):
        result = summary.by_key()[key]
        stem = safe_stem(result.area_code)
        folder = summary.out_dir / "profiles" / "neighbourhood"
        assert (folder / f"{stem}.failed.ipynb").is_file()
        assert not (folder / f"{stem}.ipynb").exists()
        assert not (folder / f"{stem}.html").exists()
        assert not (folder / f"{stem}.json").exists()
        nbformat.validate(nbformat.read(folder / f"{stem}.failed.ipynb", as_version=4))
    assert summary.failed == 2 and summary.ok == 5 and summary.exit_code == 1


@pytest.mark.slow
def test_untrusted_names_and_codes_are_escaped_and_paths_stay_inside(mixed_run):
    summary, _, _ = mixed_run
    result = summary.by_key()["place/../../etc"]
    out_dir = summary.out_dir
    assert result.html_path.resolve().is_relative_to(out_dir / "profiles" / "place")
    assert result.html_path.name == f"{safe_stem('../../etc')}.html"
    index = summary.index_path.read_text()
    assert "<script>alert(1)</script>" not in index
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in index
    assert "../../etc" in index  # shown as text, escaped context
    profile = result.html_path.read_text()
    assert "<title><script>" not in profile and "&lt;script&gt;alert(1)" in profile
    manifest = json.loads(summary.manifest_path.read_text())
    assert manifest["caller"] == "test"
    job = next(j for j in manifest["jobs"] if j["key"] == "place/../../etc")
    assert job["html"] == f"profiles/place/{safe_stem('../../etc')}.html"


@pytest.mark.slow
def test_warm_pool_is_fast_after_start(mixed_run):
    summary, _, _ = mixed_run
    # Warm jobs (not the first, not after a replaced kernel) take well under a second.
    checker = summary.by_key()["neighbourhood/B2"]
    assert checker.seconds < 2.0, checker.seconds


# --------------------------------------------------------------------------- resume / failures
@pytest.fixture(scope="module")
def resume_setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    good = write_notebook(
        base / "good.ipynb", [FIGURES, "print('scale', scale)"], "area_code = 'X'\nscale = 1\n"
    )
    bad = write_notebook(
        base / "bad.ipynb", [FIGURES, "x = 1", "raise ValueError(f'no data for {area_code}')"]
    )
    jobs = [make_job(good, code, scale=1) for code in ("P1", "P2", "P3")]
    jobs.append(make_job(bad, "BAD", level="system"))
    return base, jobs


@pytest.mark.slow
def test_success_failure_and_resume(resume_setup):
    base, jobs = resume_setup
    out = base / "out"
    first = run_profiles(jobs, out, workers=2, timeout=60, progress=False)
    results = first.by_key()
    assert (first.ok, first.failed, first.skipped) == (3, 1, 0)

    # successes: HTML references the single local plotly.js and carries a plotly div
    asset = out / "assets" / "plotly.min.js"
    import plotly

    shipped = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert asset.read_bytes() == shipped.read_bytes()
    for code in ("P1", "P2", "P3"):
        result = results[f"neighbourhood/{code}"]
        html = result.html_path.read_text()
        head = html.split("</head>")[0]
        assert '<script src="../../assets/plotly.min.js"></script>' in head
        assert (result.html_path.parent / "../../assets/plotly.min.js").resolve() == asset
        assert 'class="plotly-graph-div"' in html and "Plotly.newPlot" in html
        assert "require.min.js" not in html and "cdnjs" not in head.split("mermaid")[0]
        assert "print('scale'" not in html  # code inputs hidden
        assert len(html) < 1_000_000  # no embedded plotly.js

    # failure isolation: cell index, ename and message everywhere a user looks
    bad = results["system/BAD"]
    assert bad.status == "failed"
    assert (bad.error_cell_index, bad.error_ename) == (FIRST_BODY_CELL + 2, "ValueError")
    assert bad.error_message == "no data for BAD"
    assert bad.error_execution_count == 5
    index = first.index_path.read_text()
    assert f"cell {FIRST_BODY_CELL + 2}" in index and "ValueError: no data for BAD" in index
    assert 'href="profiles/neighbourhood/P1.html"' in index
    assert "Registered patients" in index and "2,468" in index
    manifest = json.loads(first.manifest_path.read_text())
    entry = next(j for j in manifest["jobs"] if j["key"] == "system/BAD")
    assert entry["error"] == {
        "cell_index": FIRST_BODY_CELL + 2,
        "execution_count": 5,
        "ename": "ValueError",
        "message": "no data for BAD",
    }
    assert manifest["counts"]["failed"] == 1 and manifest["python"] and manifest["platform"]
    assert all(j["fingerprint"] for j in manifest["jobs"])

    # resume: everything up to date is skipped; the failed job is tried again
    second = run_profiles(jobs, out, workers=2, timeout=60, progress=False)
    assert (second.ok, second.failed, second.skipped) == (0, 1, 3)
    assert second.by_key()["neighbourhood/P1"].html_path == results["neighbourhood/P1"].html_path

    # changing one parameter reruns only that job
    changed = [
        make_job(j.notebook, j.area_code, scale=2) if j.area_code == "P2" else j for j in jobs
    ]
    third = run_profiles(changed[:3], out, workers=2, timeout=60, progress=False)
    statuses = {r.area_code: r.status for r in third.results}
    assert statuses == {"P1": "skipped", "P2": "ok", "P3": "skipped"}
    assert "scale 2" in third.by_key()["neighbourhood/P2"].ipynb_path.read_text()

    # force reruns everything
    forced = run_profiles(changed[:3], out, workers=2, timeout=60, progress=False, force=True)
    assert (forced.ok, forced.skipped) == (3, 0)


# --------------------------------------------------------------------------- kill safety
KILL_SCRIPT = """
import sys
from pathlib import Path
from pophealth.runner import ProfileJob, run_profiles

if __name__ == "__main__":
    notebook, out = Path(sys.argv[1]), Path(sys.argv[2])
    jobs = [
        ProfileJob(f"neighbourhood/K{i:02d}", f"K{i:02d}", f"Area {i}", "neighbourhood",
                   notebook, {"area_code": f"K{i:02d}"}, {}, "fp")
        for i in range(int(sys.argv[3]))
    ]
    summary = run_profiles(jobs, out, workers=2, timeout=60, progress=False)
    sys.exit(summary.exit_code)
"""


def _assert_outputs_consistent(out: Path) -> int:
    """Every file under a final name is complete; every sidecar describes its files exactly."""
    folder = out / "profiles" / "neighbourhood"
    for ipynb in folder.glob("*.ipynb"):
        nbformat.validate(nbformat.read(ipynb, as_version=4))
    for html in folder.glob("*.html"):
        assert html.read_text().rstrip().endswith("</html>"), html
    sidecars = list(folder.glob("*.json"))
    for sidecar in sidecars:
        record = json.loads(sidecar.read_text())
        for kind in ("ipynb", "html"):
            data = (folder / record[kind]["name"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == record[kind]["sha256"], sidecar
    return len(sidecars)


@pytest.mark.slow
def test_sigkill_mid_run_leaves_no_partial_outputs_and_rerun_completes(tmp_path):
    notebook = write_notebook(tmp_path / "nb.ipynb", [FIGURES, "import time\ntime.sleep(0.2)"])
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, str(script), str(notebook), str(out), "16"],
        env=env,
        start_new_session=True,  # its own process group: we kill the whole run at once
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    folder = out / "profiles" / "neighbourhood"
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if len(list(folder.glob("*.json"))) >= 3:
                break
            assert process.poll() is None, "run finished before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("run produced no outputs within 90 s")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    assert process.returncode == -signal.SIGKILL
    done_before = _assert_outputs_consistent(out)
    assert 3 <= done_before < 16
    assert not (out / "index.html").exists()  # written only at the end

    rerun = subprocess.run(
        [sys.executable, str(script), str(notebook), str(out), "16"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["skipped"] >= done_before
    assert manifest["counts"]["ok"] + manifest["counts"]["skipped"] == 16
    assert _assert_outputs_consistent(out) == 16
    assert not list(out.rglob("*.tmp"))


def test_outputs_up_to_date_requires_matching_fingerprint_and_files(tmp_path):
    from pophealth.runner.jobs import job_paths

    notebook = write_notebook(tmp_path / "nb.ipynb", ["x = 1"])
    job = make_job(notebook, "Z1")
    paths = job_paths(tmp_path, job)
    paths.html.parent.mkdir(parents=True)
    paths.html.write_text("<html></html>")
    paths.ipynb.write_text("{}")
    sidecar = {"fingerprint": "abc", "ipynb": {"size": 2}, "html": {"size": 13}}
    paths.sidecar.write_text(json.dumps(sidecar))
    assert outputs_up_to_date(paths, "abc")
    assert not outputs_up_to_date(paths, "abd")
    paths.html.write_text("<html>truncated")
    assert not outputs_up_to_date(paths, "abc")


# --------------------------------------------------------------------------- Dask
@pytest.mark.slow
def test_dask_local_cluster_runs_jobs(tmp_path):
    distributed = pytest.importorskip("distributed")
    notebook = write_notebook(tmp_path / "nb.ipynb", [FIGURES])
    jobs = [make_job(notebook, code) for code in ("D1", "D2")]
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        summary = run_profiles(jobs, tmp_path / "out", scheduler=cluster.scheduler_address)
    assert (summary.ok, summary.failed) == (2, 0)
    for result in summary.results:
        assert "Plotly.newPlot" in result.html_path.read_text()
    manifest = json.loads(summary.manifest_path.read_text())
    assert manifest["engine"]["mode"] == "dask"
    assert manifest["engine"]["dask_scheduler"] == cluster.scheduler_address


# --------------------------------------------------------------------------- browser
def _browser_or_skip():
    from browser_helpers import require_chromium

    require_chromium()


@pytest.mark.slow
def test_profile_and_index_render_in_headless_chromium(mixed_run, tmp_path):
    _browser_or_skip()
    from browser_helpers import render_dom

    summary, _, _ = mixed_run
    profile = summary.by_key()["neighbourhood/B2"].html_path
    dom, errors = render_dom(profile)
    assert 'class="main-svg"' in dom or "js-plotly-plot" in dom
    assert errors == []
    dom, errors = render_dom(summary.index_path)
    assert "Failures" in dom and errors == []

    # control: a page whose plotly.js cannot load must show no figure and report the error,
    # so the assertions above can fail.
    broken = tmp_path / "broken.html"
    broken.write_text(profile.read_text().replace("../../assets/plotly.min.js", "missing.js"))
    dom, errors = render_dom(broken)
    assert "main-svg" not in dom
    assert any("Plotly is not defined" in e for e in errors), errors


def test_index_keeps_earlier_profiles_that_still_exist_and_only_those(tmp_path):
    import dataclasses

    notebook = write_notebook(tmp_path / "nb.ipynb", ["x = 1"])
    jobs = [
        dataclasses.replace(make_job(notebook, code), group=group)
        for code, group in (("A1", "North"), ("A2", "North"), ("A3", "<b>South</b>"))
    ]
    out = tmp_path / "out"
    assert run_profiles(jobs, out, workers=1, progress=False).ok == 3
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    # A deleted profile drops off; a manifest entry pointing outside the folder is ignored.
    (out / "profiles" / "neighbourhood" / "A3.html").unlink()
    (tmp_path / "outside.html").write_text("<p>not ours</p>")
    (tmp_path / "outside.json").write_text("{}")
    manifest["jobs"].append(
        {"key": "neighbourhood/X9", "status": "ok", "html": "../outside.html", "level": "x"}
    )
    manifest_path.write_text(json.dumps(manifest))

    summary = run_profiles(jobs[:1], out, workers=1, force=True, progress=False)
    assert [r.key for r in summary.results] == ["neighbourhood/A1"] and summary.exit_code == 0
    kept = json.loads(manifest_path.read_text())
    assert {j["key"]: j["status"] for j in kept["jobs"]} == {
        "neighbourhood/A1": "ok",
        "neighbourhood/A2": "earlier",
    }
    earlier = next(j for j in kept["jobs"] if j["status"] == "earlier")
    assert earlier["headline"] == {"Registered patients": "2,468"} and earlier["finished_at"]
    assert earlier["group"] == "North"
    index = summary.index_path.read_text()
    assert 'href="profiles/neighbourhood/A2.html"' in index and "outside" not in index
    assert "A3" not in index and "plus 1 from earlier runs" in index
    # Only one group left on the index: no System column.
    assert '<button type="button">System</button>' not in index


def test_index_of_a_multi_system_run_has_an_escaped_system_column(tmp_path):
    import dataclasses

    from pophealth.runner.index import render_index
    from pophealth.runner.jobs import JobResult

    results = [
        dataclasses.replace(
            JobResult(
                key=f"n/{i}", area_code=f"A{i}", area_name=f"Area {i}", level="place", status="ok"
            ),
            group=group,
        )
        for i, group in enumerate(["<script>x</script>", "Beta ICB"] * 20)
    ]
    page = render_index(
        tmp_path, results, title="t", started_at="s", finished_at="f", seconds=1.0, version="v"
    )
    assert (
        '<button type="button">System</button>' in page and "&lt;script&gt;x&lt;/script&gt;" in page
    )
    assert "<script>x</script>" not in page
    assert 'id="filter"' in page  # 40 rows: the find-an-area box is shown
    rows = page.split('class="area-row"')[1:]
    assert "&lt;script&gt;" in rows[0] and "Beta ICB" in rows[-1]  # sorted by system first


# --------------------------------------------------------------------------- batch kernel
BATCH_FIGURE = """\
import os
import re
import plotly.graph_objects as go
from pophealth import charts

ip = get_ipython()
assert not ip.history_manager.enabled, "the batch kernel keeps no input history"
assert ip.displayhook.cache_size == 0, "the batch kernel keeps no output cache"
assert ip.kernel._execute_sleep == 0, "no pause after each cell"
assert os.environ[charts.FIGURE_HTML_ENV] == "export"
from ipykernel.iostream import OutStream
assert hasattr(OutStream.flush, "__wrapped__"), "empty stream flushes are skipped"
print("before the figure")
title = {"title": {"text": "Bars <b>x</b>"}}
fig = go.Figure(go.Bar(x=["a", "b"], y=[1.23456789, 2]), layout=title)
charts.show(fig, width="half", caption="Bars for " + area_code, collapsed="Open the bars")
print("after the figure")
"""


@pytest.mark.slow
def test_batch_kernel_sends_figure_json_and_the_page_gets_its_fragment(tmp_path):
    """The runner's kernel sends a figure as Plotly JSON plus layout metadata; the page still
    draws it with the fragment an interactive session would have sent (same JSON, caption,
    width and collapsed summary), and the saved notebook keeps the JSON only."""
    import plotly.graph_objects as go

    from pophealth import charts

    notebook = write_notebook(tmp_path / "batch.ipynb", [BATCH_FIGURE])
    summary = run_profiles([make_job(notebook, "F1")], tmp_path / "out", workers=1, progress=False)
    result = summary.by_key()["neighbourhood/F1"]
    assert result.status == "ok", result.error_message
    executed = nbformat.read(result.ipynb_path, as_version=4)
    nbformat.validate(executed)
    # printed text still comes before and after the figure, in order
    before, output, after = executed.cells[FIRST_BODY_CELL].outputs
    assert (before.output_type, before.text) == ("stream", "before the figure\n")
    assert (after.output_type, after.text) == ("stream", "after the figure\n")
    assert set(output.data) == {charts.PLOTLY_MIMETYPE, "text/plain"}
    assert output.metadata[charts.FIGURE_METADATA_KEY] == {
        "width": "half",
        "caption": "Bars for F1",
        "collapsed": "Open the bars",
    }  # (escaped HTML text: these have nothing to escape)
    fig = go.Figure(
        go.Bar(x=["a", "b"], y=[1.23456789, 2]), layout={"title": {"text": "Bars <b>x</b>"}}
    )
    bundle = charts.figure_bundle(
        fig, width="half", caption="Bars for F1", collapsed="Open the bars"
    )
    assert output.data[charts.PLOTLY_MIMETYPE] == bundle[charts.PLOTLY_MIMETYPE]
    page = result.html_path.read_text(encoding="utf-8")
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert uuid.sub("ID", bundle["text/html"]) in uuid.sub("ID", page)


KERNEL_ENV_CELL = """\
import os
assert os.environ["POPHEALTH_SHARED_TABLES"] == "/shared/here", os.environ.get(
    "POPHEALTH_SHARED_TABLES"
)
"""


@pytest.mark.slow
def test_kernel_env_reaches_the_batch_kernel(tmp_path):
    """``run_profiles(kernel_env=...)`` starts the kernels with those variables (how a run
    points its kernels at the store-wide tables it shares, pophealth.shared_tables)."""
    notebook = write_notebook(tmp_path / "env.ipynb", [KERNEL_ENV_CELL])
    jobs = [make_job(notebook, "E1"), make_job(notebook, "E2")]
    summary = run_profiles(
        jobs,
        tmp_path / "out",
        workers=1,
        progress=False,
        kernel_env={"POPHEALTH_SHARED_TABLES": "/shared/here"},
    )
    assert [r.status for r in summary.results] == ["ok", "ok"], [
        r.error_message for r in summary.results
    ]
    without = run_profiles(jobs[:1], tmp_path / "out2", workers=1, progress=False)
    assert without.results[0].status == "failed"  # the variable is not there by chance


WARM_CELL = """\
import builtins, os
assert getattr(builtins, "_ph_warmed", None) == "yes", "the warm-up did not run first"
assert os.path.exists(os.environ["PH_BEFORE_JOBS"]), "a job ran before before_jobs returned"
"""


@pytest.mark.slow
def test_kernels_warm_up_while_before_jobs_runs(tmp_path):
    """``warm_code`` runs in each kernel before its first job (it starts the kernel, with
    ``kernel_env``), while ``before_jobs`` runs in the caller; no job starts before
    ``before_jobs`` has returned, and what it returns reaches the manifest."""
    import json

    marker = tmp_path / "before-jobs-done"
    notebook = write_notebook(tmp_path / "warm.ipynb", [WARM_CELL])
    jobs = [make_job(notebook, f"W{i}") for i in range(3)]

    def before_jobs() -> dict:
        time.sleep(1.0)  # the warm-ups run meanwhile
        marker.write_text("done")
        return {"shared_tables": ["t.parquet"]}

    summary = run_profiles(
        jobs,
        tmp_path / "out",
        workers=2,
        progress=False,
        kernel_env={"PH_BEFORE_JOBS": str(marker)},
        warm_code="import builtins\nbuiltins._ph_warmed = 'yes'\n",
        before_jobs=before_jobs,
    )
    assert [r.status for r in summary.results] == ["ok"] * 3, [
        r.error_message for r in summary.results
    ]
    manifest = json.loads(summary.manifest_path.read_text(encoding="utf-8"))
    assert manifest["shared_tables"] == ["t.parquet"]
    assert len(manifest["engine"]["warm_up_seconds"]) == 2
    assert "warm_up_errors" not in manifest["engine"]


@pytest.mark.slow
def test_a_failed_warm_up_is_recorded_and_the_job_reports_the_error(tmp_path):
    """A warm-up that raises does not stop the run: the engine record names it, and the
    job, which runs the same code, fails with the real error."""
    import json

    notebook = write_notebook(tmp_path / "w.ipynb", ["import no_such_module_here"])
    summary = run_profiles(
        [make_job(notebook, "F1")],
        tmp_path / "out",
        workers=1,
        progress=False,
        warm_code="import no_such_module_here\n",
    )
    engine = json.loads(summary.manifest_path.read_text(encoding="utf-8"))["engine"]
    assert "no_such_module_here" in engine["warm_up_errors"][0]
    assert summary.results[0].status == "failed"
    assert summary.results[0].error_ename == "ModuleNotFoundError"


def test_a_worker_validates_notebooks_without_the_uri_grammar():
    """A runner worker skips jsonschema's URI grammar (``skip_uri_grammar``: most of the
    cost of importing nbformat) and still validates notebooks: a broken one is rejected."""
    code = textwrap.dedent(
        """
        import sys
        from pophealth.runner.executor import skip_uri_grammar
        skip_uri_grammar()
        import nbformat
        assert sys.modules["rfc3987_syntax"] is None
        nbformat.validate(nbformat.v4.new_notebook())
        broken = nbformat.v4.new_notebook()
        broken.cells.append({"cell_type": "code", "source": "1"})
        try:
            nbformat.validate(broken)
        except nbformat.ValidationError:
            print("rejected")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "rejected"


MIXED_CELLS = [
    "print('one'); import sys; print('to stderr', file=sys.stderr)",
    "from IPython.display import display, HTML\ndisplay(HTML('<b>a</b>'))\nprint('between')\n"
    "display(HTML('<i>b</i>'))",
    "6 * 7",  # an execute result, with its execution count
    "raise ValueError('expected here')",  # tagged raises-exception: the run goes on
    "",  # empty: skipped, no execution count
    "print('never')",  # tagged skip-execution
    "h = display(HTML('first'), display_id=True)\nh.update(HTML('second'))\nprint('last')",
]


def _comparable(nb: nbformat.NotebookNode) -> list:
    """Each cell's execution count and outputs (timing and ids are per run)."""
    return [(cell.get("execution_count"), cell.get("outputs")) for cell in nb.cells]


@pytest.mark.slow
def test_one_request_notebooks_equal_nbclient_cell_by_cell(tmp_path):
    """The batch kernel runs a notebook's cells in one request (``batch_kernel.run_notebook``);
    the executed notebook has the outputs, execution counts and error output nbclient's own
    cell-by-cell execution gives: streams, displays, an execute result, an updated display,
    a cell allowed to fail, skipped cells. Then a failing cell stops the run at that cell."""
    from nbclient import NotebookClient
    from papermill.parameterize import parameterize_notebook

    path = write_notebook(tmp_path / "mixed.ipynb", MIXED_CELLS)
    nb = nbformat.read(path, as_version=4)
    body = FIRST_BODY_CELL - 1  # the first body cell before papermill injects its cell
    nb.cells[body + 3].metadata["tags"] = ["raises-exception"]
    nb.cells[body + 5].metadata["tags"] = ["skip-execution"]
    nbformat.write(nb, path)
    summary = run_profiles([make_job(path, "M1")], tmp_path / "out", workers=1, progress=False)
    result = summary.by_key()["neighbourhood/M1"]
    assert result.status == "ok", result.error_message
    ours = nbformat.read(result.ipynb_path, as_version=4)
    nbformat.validate(ours)

    reference = nbformat.read(path, as_version=4)
    for cell in reference.cells:  # as papermill's load_notebook_node (and the runner) do
        cell.metadata.setdefault("tags", [])
    reference.metadata["papermill"] = {}
    reference = parameterize_notebook(reference, {"area_code": "M1"}, kernel_name="python3")
    NotebookClient(reference, kernel_name="python3", timeout=60).execute()
    assert _comparable(ours) == _comparable(reference)
    counts = [c.execution_count for c in ours.cells if c.cell_type == "code"]
    assert counts == [1, 2, 3, 4, 5, 6, None, None, 7]
    assert ours.cells[FIRST_BODY_CELL + 3].outputs[0].ename == "ValueError"

    failing = write_notebook(tmp_path / "fails.ipynb", ["print('ran')", "1 / 0", "print('no')"])
    summary = run_profiles([make_job(failing, "F2")], tmp_path / "out2", workers=1, progress=False)
    failed = summary.by_key()["neighbourhood/F2"]
    assert failed.status == "failed" and failed.error_ename == "ZeroDivisionError"
    assert failed.error_cell_index == FIRST_BODY_CELL + 1
    executed = nbformat.read(failed.failed_ipynb_path, as_version=4)
    assert executed.cells[FIRST_BODY_CELL + 1].outputs[-1].output_type == "error"
    assert not executed.cells[FIRST_BODY_CELL + 2].get("outputs")


@pytest.mark.slow
def test_jobs_worked_out_while_the_kernels_warm_up(tmp_path):
    """``run_profiles(jobs=function)`` starts the workers first: their kernels warm up (in
    ``warm_dir``) while this process works out the jobs (``pophealth run`` loads its store
    then); the title is asked for after the jobs. An error working them out is raised, and
    the workers and kernels are gone."""
    import json

    import psutil

    marker = tmp_path / "warmed"
    notebook = write_notebook(tmp_path / "w.ipynb", ["import builtins\nassert builtins._ph_w"])
    seen = {}

    def make_jobs() -> list:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the kernels warm up before the jobs exist
        seen["warmed_first"] = marker.exists()
        return [make_job(notebook, "D1"), make_job(notebook, "D2")]

    summary = run_profiles(
        make_jobs,
        tmp_path / "out",
        workers=2,
        progress=False,
        warm_code=(
            "import builtins, os, pathlib\nbuiltins._ph_w = True\n"
            f"pathlib.Path({str(marker)!r}).write_text(os.getcwd())\n"
        ),
        warm_dir=tmp_path,
        title=lambda: f"Worked out {len(seen)}",
    )
    assert seen["warmed_first"]
    assert marker.read_text() == str(tmp_path)
    assert [r.status for r in summary.results] == ["ok", "ok"], [
        r.error_message for r in summary.results
    ]
    assert "Worked out 1" in summary.index_path.read_text(encoding="utf-8")
    engine = json.loads(summary.manifest_path.read_text(encoding="utf-8"))["engine"]
    assert len(engine["warm_up_seconds"]) == 2

    def failing() -> list:
        raise ValueError("no such system")

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(ValueError, match="no such system"):
        run_profiles(failing, tmp_path / "out2", workers=2, progress=False, warm_code="import time")
    time.sleep(0.5)
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not left, left


def test_grouped_queue_keeps_each_system_on_one_worker_and_runs_every_job():
    """Each worker takes its system's next job, else a system no other worker is on; a retry
    goes back to the front; every job comes out once."""
    from types import SimpleNamespace

    from pophealth.runner.engine import _GroupedQueue

    def entry(group: str, n: int):
        return (SimpleNamespace(job=SimpleNamespace(group=group, key=f"{group}{n}")), {})

    todo = [entry("A", 1), entry("B", 1), entry("A", 2), entry("C", 1), entry("B", 2)]
    queue = _GroupedQueue(todo)
    first = queue.take(None, set())[0].job.key
    second = queue.take(None, {"A"})[0].job.key
    assert (first, second) == ("A1", "B1")
    assert queue.take("A", {"B"})[0].job.key == "A2"
    retried = entry("B", 9)
    queue.appendleft(retried)
    assert queue.take("A", {"C"})[0].job.key == "B9"  # A is done; C is taken; B next
    assert queue.take("B", set())[0].job.key == "B2"
    assert queue.take("B", set())[0].job.key == "C1"
    assert len(queue) == 0
