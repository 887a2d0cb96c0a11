"""The report's text, tables and charts, from the result tables: Markdown helpers (markdown.py),
verdict sentences (verdicts.py), the summary (summary.py), the detailed tables (tables.py),
charts (charts.py), the method space (method_report.py), what ran (reproducibility.py), each
step's own summary (step_summaries.py) and the rendering templates (templates/)."""

from .costs import resources_table
from .reproducibility import provenance
from .summary import executive_summary, model_section, title
from .tables import comparisons_table, examples, performance_tables

__all__ = [
    "comparisons_table",
    "examples",
    "executive_summary",
    "model_section",
    "performance_tables",
    "provenance",
    "resources_table",
    "title",
]
