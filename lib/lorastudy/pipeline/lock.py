"""One run of a study at a time: a lock on the study's folder, `runs/<study>/.lock`.

The lock is an advisory `flock` on that file, so the kernel releases it whenever its holder
ends, however it ends (Ctrl-C, an exception, SIGKILL); no process id has to be guessed
alive or dead. The file also says who holds it (pid, host, start time, command), for the
message a second run prints. A holder empties the file when it is done, so a file that still
names a holder while nobody holds the lock was left by a process that was killed: the next
run takes it over and says so.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class StudyLocked(RuntimeError):
    """Another process is running the same study."""

    def __init__(self, study: str, holder: dict):
        self.study, self.holder = study, holder
        who = f"pid {holder.get('pid', 'unknown')}"
        if holder.get("host"):
            who += f" on {holder['host']}"
        since = f" since {holder['started']}" if holder.get("started") else ""
        command = f" ({holder['command']})" if holder.get("command") else ""
        super().__init__(
            f"study {study} is already being run by {who}{since}{command}; "
            "wait for it to finish or stop that process, then run again"
        )


def _holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 65536).decode(errors="replace").strip()
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {"pid": "unknown", "command": text[:200]}


def _holder_of_busy_lock(fd: int) -> dict:
    # The holder writes its name just after taking the lock: give it a moment to appear.
    for _ in range(20):
        holder = _holder(fd)
        if holder:
            return holder
        time.sleep(0.05)
    return {}


@contextmanager
def study_lock(run_dir: Path, study: str, command: str, log: Callable[[str], None] = print) -> Iterator[dict]:
    """Hold the study's lock for the duration of the block, or raise StudyLocked at once.
    `command` says what the holder runs, for the message another run prints."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyLocked(study, _holder_of_busy_lock(fd)) from None
        left = _holder(fd)
        if left:
            log(
                f"study {study}: taking over the lock left by pid {left.get('pid', 'unknown')} on "
                f"{left.get('host', 'an unknown host')} (started {left.get('started', 'at an unknown time')}), "
                "which no longer holds it: that run was killed"
            )
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        os.fsync(fd)
        try:
            yield me
        finally:
            # Emptied, not removed: removing it would let a waiting process lock a file no longer
            # in the folder while a third one creates and locks a new one.
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock
