"""lorastudy: a reproducible LoRA-vs-QLoRA fine-tuning study."""

__version__ = "0.2.0"
