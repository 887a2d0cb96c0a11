"""lorastudy: a reproducible LoRA-vs-QLoRA fine-tuning study."""

__version__ = "0.1.0"
