"""What a method costs: peak memory and time of a phase (memory.py, every CUDA call behind one
Gpu seam) and parameters and weight bytes (parameters.py). Imports torch only where it is used."""

from .memory import (
    MB,
    Gpu,
    PeakSampler,
    Phase,
    current_bytes,
    device,
    device_name,
    headline_peak_bytes,
    headline_peak_mb,
    largest_peak,
    measure,
    synchronize,
)
from .parameters import count_parameters, folder_bytes, quantized_weights, weights_bytes

__all__ = [
    "MB",
    "Gpu",
    "PeakSampler",
    "Phase",
    "count_parameters",
    "current_bytes",
    "device",
    "device_name",
    "folder_bytes",
    "headline_peak_bytes",
    "headline_peak_mb",
    "largest_peak",
    "measure",
    "quantized_weights",
    "synchronize",
    "weights_bytes",
]
