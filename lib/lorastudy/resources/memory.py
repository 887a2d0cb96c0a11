"""A phase's peak memory and time.

On CUDA, a phase starts from a clean slate: queued work finished, the allocator's cache
emptied (what the previous phase cached would otherwise count in this one's device-used
memory) and torch's allocated and reserved peaks reset; the GPU's used memory is sampled
while it runs. On a CPU the figure is the process's peak resident set size (VmHWM), which
Linux lets a process reset by writing 5 to /proc/self/clear_refs, so each phase gets its
own peak there too.

Every CUDA call the measurements make goes through `Gpu`, one device named by its index,
so that the logic around them (which device a sampling thread reads, what a phase resets
first) is tested on a CPU with a stand-in.
"""

from __future__ import annotations

import gc
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


MB = 1024 * 1024


class Gpu:
    """One CUDA device, by index. A thread starts on device 0 whatever device its parent
    uses, so every call names the index: a sampling thread of the process training on GPU 3
    reads GPU 3."""

    def __init__(self, index: int):
        self.index = index

    def name(self) -> str:
        import torch

        return torch.cuda.get_device_name(self.index)

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize(self.index)

    def empty_cache(self) -> None:
        import torch

        with torch.cuda.device(self.index):
            torch.cuda.empty_cache()

    def reset_peaks(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats(self.index)

    def used_bytes(self) -> int:
        """The device's used memory, all of it (cudaMemGetInfo): allocator, managed memory, context."""
        import torch

        free, total = torch.cuda.mem_get_info(self.index)
        return total - free

    def allocated_bytes(self) -> int:
        import torch

        return torch.cuda.memory_allocated(self.index)

    def peaks(self) -> dict[str, int]:
        import torch

        return {
            "peak_allocated_bytes": torch.cuda.max_memory_allocated(self.index),
            "peak_reserved_bytes": torch.cuda.max_memory_reserved(self.index),
        }


def gpu() -> Gpu | None:
    """The device this process computes on (its current CUDA device), or None without CUDA."""
    import torch

    return Gpu(torch.cuda.current_device()) if torch.cuda.is_available() else None


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_name() -> str:
    import torch

    current = gpu()
    if current is not None:
        return current.name()
    import platform

    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()})"


def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def synchronize(on: Gpu | None = None) -> None:
    """Wait for queued CUDA work, so a timer or a memory reading covers the work, not its launch."""
    on = on or gpu()
    if on is not None:
        on.synchronize()


def reset_peak(on: Gpu | None = None) -> bool:
    """Start a new peak; on a GPU from an empty allocator cache. False where the kernel refuses
    to reset the resident-set peak (/proc/self/clear_refs is not writable in some containers),
    so VmHWM stays the process's lifetime peak and a phase's peak must be sampled instead."""
    if on is not None:
        on.synchronize()
        gc.collect()  # tensors only a reference cycle holds would keep their blocks cached
        on.empty_cache()
        on.reset_peaks()
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def peak_bytes(on: Gpu | None = None) -> dict[str, int | str]:
    """The peak since the last reset_peak(): CUDA allocated/reserved, or CPU RSS."""
    if on is not None:
        on.synchronize()
        return {"memory_kind": "cuda", **on.peaks(), "peak_rss_bytes": _peak_rss()}
    return {"memory_kind": "cpu_rss", "peak_rss_bytes": _peak_rss()}


def _peak_rss() -> int:
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_bytes() -> dict[str, int]:
    out = {"rss_bytes": rss_bytes()}
    current = gpu()
    if current is not None:
        out["cuda_allocated_bytes"] = current.allocated_bytes()
    return out


def headline_peak_bytes(peak: dict) -> int:
    """The one peak figure a table and the verdicts use. On a GPU, the device's used memory
    (sampled) during a phase that started with an empty allocator cache: what the phase's
    tensors and PyTorch's cache of them took, and what the allocator does not see
    (bitsandbytes' paged optimizer state in CUDA managed memory, the CUDA context, other
    processes on the device); the allocator's reserved peak where it was not sampled. On a
    CPU, the process's peak resident set."""
    if peak["memory_kind"] != "cuda":
        return peak["peak_rss_bytes"]
    return max(peak.get("peak_device_used_bytes", 0), peak["peak_reserved_bytes"])


def largest_peak(peaks: list[dict]) -> dict:
    """The peak over several phases measured one after the other: each figure's maximum."""
    out = dict(peaks[0])
    for peak in peaks[1:]:
        for key, value in peak.items():
            if key != "memory_kind":
                out[key] = max(out.get(key, 0), value)
    return out


def headline_peak_mb(peak: dict) -> float:
    return round(headline_peak_bytes(peak) / MB, 1)


@dataclass
class Phase:
    wall_s: float = 0.0
    peak: dict = field(default_factory=dict)


class PeakSampler:
    """The largest value `read` returns while it runs, read every `interval` seconds in a
    background thread: for figures no counter keeps a peak of, such as a GPU's used memory."""

    def __init__(self, read: Callable[[], int], interval: float = 0.05):
        self.read, self.interval, self.peak = read, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.read())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())


@contextmanager
def measure(on: Gpu | None = None) -> Iterator[Phase]:
    """Time a block and record its peak memory (on a GPU, its used memory sampled as well).
    `on`: the GPU to measure; by default the one this process computes on."""
    on = on or gpu()
    phase = Phase()
    rss_sampler = nullcontext() if reset_peak(on) else PeakSampler(rss_bytes)
    device_sampler = PeakSampler(on.used_bytes) if on is not None else nullcontext()
    start = time.perf_counter()
    try:
        with rss_sampler, device_sampler:
            yield phase
            synchronize(on)  # the block's queued work is part of it
    finally:
        phase.wall_s = time.perf_counter() - start
        phase.peak = peak_bytes(on)
        if isinstance(device_sampler, PeakSampler):
            phase.peak["peak_device_used_bytes"] = device_sampler.peak
        if isinstance(rss_sampler, PeakSampler):
            # Sampled every 50 ms: a spike shorter than that can be missed, but the figure is
            # this phase's, not the largest the process ever reached.
            phase.peak["peak_rss_bytes"] = rss_sampler.peak
