"""Maintenance scripts: the authors' conformance goldens, the report screenshots. Run as files
(``python scripts/NAME.py``) or as modules (``python -m scripts.NAME``)."""
