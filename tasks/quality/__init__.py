"""Quality.

The validation gate. SQL checks from ``sql/validation/checks.toml``, run read-only
against the staging table before the merge; warn or halt. Rooms: ``guard`` (what a check may
be), ``manifest`` (checks.toml and the check declarations), ``runner`` (running the gate in a
read-only transaction), ``presentation`` (results as text).
"""

from __future__ import annotations

from tasks.quality.guard import UnsafeCheckSQL, check_read_only
from tasks.quality.manifest import (
    FAILED,
    MANIFEST,
    OPERATORS,
    PASSED,
    SEVERITIES,
    SKIPPED,
    Check,
    CheckResult,
    ValidationConfigError,
    load_checks,
)
from tasks.quality.presentation import TABLE_COLUMNS, check_cells, describe, outcome_counts, results_table
from tasks.quality.runner import (
    ARTIFACT_KEY,
    ValidationHalted,
    enforce_gate,
    read_only_connection,
    run_adhoc,
    run_check,
    run_checks,
    run_validation,
)

__all__ = [
    "ARTIFACT_KEY",
    "FAILED",
    "MANIFEST",
    "OPERATORS",
    "PASSED",
    "SEVERITIES",
    "SKIPPED",
    "TABLE_COLUMNS",
    "Check",
    "CheckResult",
    "UnsafeCheckSQL",
    "ValidationConfigError",
    "ValidationHalted",
    "check_cells",
    "check_read_only",
    "describe",
    "enforce_gate",
    "load_checks",
    "outcome_counts",
    "read_only_connection",
    "results_table",
    "run_adhoc",
    "run_check",
    "run_checks",
    "run_validation",
]
