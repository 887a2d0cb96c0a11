"""One run of a study at a time: the lock on runs/<study>/, held by real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lorastudy.pipeline.lock import StudyLocked, study_lock

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from pathlib import Path
from lorastudy.pipeline.lock import study_lock
with study_lock(Path(sys.argv[1]), "smoke", "the holder's command"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path's smoke study."""
    run_dir = tmp_path / "runs" / "smoke"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc, run_dir
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_a_held_study_refuses_a_second_holder_naming_the_first(holder):
    proc, run_dir = holder
    with pytest.raises(StudyLocked) as info:
        with study_lock(run_dir, "smoke", "a second run"):
            pytest.fail("took a lock that another process holds")
    message = str(info.value)
    assert f"study smoke is already being run by pid {proc.pid}" in message and "the holder's command" in message


def test_a_second_lorastudy_run_exits_3_at_once(holder, tmp_path):
    proc, run_dir = holder
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "lorastudy", "run", str(ROOT / "params" / "smoke.yaml"), "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert f"error: study smoke is already being run by pid {proc.pid}" in result.stderr
    assert "Traceback" not in result.stderr and time.perf_counter() - start < 20
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # it wrote nothing


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_message(holder):
    proc, run_dir = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert str(proc.pid) in (run_dir / ".lock").read_text()  # it left its name behind
    messages = []
    with study_lock(run_dir, "smoke", "the next run", messages.append) as me:
        assert me["pid"] == os.getpid() and "the next run" in (run_dir / ".lock").read_text()
    assert len(messages) == 1 and f"taking over the lock left by pid {proc.pid}" in messages[0]
    assert (run_dir / ".lock").read_text() == ""  # released


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_the_lock_is_released_when_the_run_fails_or_is_interrupted(tmp_path, error):
    messages = []
    with pytest.raises(error):
        with study_lock(tmp_path, "smoke", "a run", messages.append):
            raise error()
    with study_lock(tmp_path, "smoke", "the next run", messages.append):
        pass
    assert messages == []  # released cleanly: nothing stale to take over
