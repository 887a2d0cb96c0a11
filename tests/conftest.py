from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The built-in tiny model, built once (it is deterministic) and shared with `make report`."""
    from lorastudy.models import build_tiny_model, tiny_model_dir

    path = tiny_model_dir(ROOT / "runs" / "_models")
    if not (path / "config.json").is_file():
        build_tiny_model(path)
    return path


@pytest.fixture
def study_root(tmp_path: Path, tiny_model: Path) -> Path:
    """A folder to run a study in, with the built tiny model linked in rather than rebuilt."""
    models = tmp_path / "runs" / "_models"
    models.mkdir(parents=True)
    os.symlink(tiny_model, models / tiny_model.name)
    return tmp_path


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A `cluster` test needs Ray, an optional extra: without it the test is skipped with the reason
    (pytest -ra lists it), or fails where LORASTUDY_REQUIRE_CLUSTER=1 says Ray must be there (CI)."""
    if item.get_closest_marker("cluster") is None:
        return
    try:
        import ray  # noqa: F401
    except ImportError:
        reason = "needs Ray: pip install -e '.[cluster]' (or make install EXTRAS=cluster)"
        if os.environ.get("LORASTUDY_REQUIRE_CLUSTER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
