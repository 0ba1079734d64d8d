"""Strava resources as declarations: the specs (:mod:`.spec`) and the catalog of every entity (:mod:`.catalog`)."""

# The warehouse package first: its merge and tables read the catalog, and the catalog's specs read
# the warehouse's schema. Entered here first, the catalog would meet itself half initialised
# (tests/test_imports.py imports every module first in a fresh interpreter).
import tasks.warehouse  # noqa: F401  (import order, see above)
from tasks.entities.catalog import DETAIL_CHILDREN, ENRICHMENT_TABLE, SPECS, STREAM_KEYS, enrichment_state_table
from tasks.entities.spec import EntitySpec, Merge, Paging

__all__ = [
    "DETAIL_CHILDREN",
    "ENRICHMENT_TABLE",
    "SPECS",
    "STREAM_KEYS",
    "EntitySpec",
    "Merge",
    "Paging",
    "enrichment_state_table",
]
