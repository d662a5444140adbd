"""Warm-kernel batch execution of parameterised profile notebooks.

``run_profiles(jobs, out_dir)`` executes one notebook per area on a pool of long-lived Jupyter
kernels (or an existing Dask cluster), exports HTML with code hidden, and writes ``index.html``
and ``manifest.json``. See :mod:`pophealth.runner.engine` for the output layout.

Notebook authors: kernels are reused between areas. Each notebook gets a fresh namespace
(``get_ipython().reset(new_session=True)``) and execution counts restart at 1, but imported
modules, ``pd.options``, plotly templates/renderers, random seeds and caches carry over, so a
notebook must set every option, seed and renderer it relies on.
"""

from pophealth.runner.engine import run_profiles
from pophealth.runner.jobs import JobResult, ProfileJob, RunSummary, safe_stem

__all__ = ["JobResult", "ProfileJob", "RunSummary", "run_profiles", "safe_stem"]
