"""A study's parameters: the schema (schema.py, which imports nothing of lorastudy), reading a
params file (load.py), validating it (validate.py), the runs it derives (runs.py) and the
folders its steps write (paths.py)."""
