"""Quality.

The validation gate. SQL checks from ``sql/validation/checks.toml``, run read-only
against the staging table before the merge; warn or halt.
"""

from __future__ import annotations

from tasks.quality.runner import (
    ARTIFACT_KEY,
    FAILED,
    MANIFEST,
    OPERATORS,
    PASSED,
    SEVERITIES,
    SKIPPED,
    TABLE_COLUMNS,
    Check,
    CheckResult,
    UnsafeCheckSQL,
    ValidationConfigError,
    ValidationHalted,
    check_cells,
    check_read_only,
    describe,
    enforce_gate,
    load_checks,
    outcome_counts,
    read_only_connection,
    results_table,
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
