"""The job's failures that `python -m beam_preprocess` reports in one line (no Beam, so
that a refused claim or a bad option is told before Beam is imported)."""
from __future__ import annotations

from trainer.shared.output_claim import ClaimLostError


class RowAccountingError(RuntimeError):
    """Rows in != rows written + rows quarantined, or too many bad rows."""


# What main prints as `beam_preprocess: error: ...`, and Beam's step logger does not
# also log with a traceback (console.configure_logging).
REPORTED = (ValueError, FileNotFoundError, FileExistsError, RowAccountingError, ClaimLostError)
