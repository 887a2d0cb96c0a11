"""The result tables from the recorded runs: metrics.csv and comparisons.csv (tables.py),
resources.csv (costs.py), the method space's tables (method_space.py), and the statistics
they rest on (intervals.py, stats.py)."""

from .recorded import StudyResults
from .tables import comparison_table, comparisons_made, load, metric_table, write

__all__ = ["StudyResults", "comparison_table", "comparisons_made", "load", "metric_table", "write"]
