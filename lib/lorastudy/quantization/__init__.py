"""Quantization formats (formats.py, torch-free: the report reads it) and each linear layer's
error and bytes in every format (errors.py)."""
