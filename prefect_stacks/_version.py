"""The package version: the one place it is written (pyproject.toml reads it from here).

Prefect reads it from the top package as the schema version of every block: bump it when a
block's fields or their secret paths change (see ``blocks/base.py``).
"""

__version__ = "0.2.0"
