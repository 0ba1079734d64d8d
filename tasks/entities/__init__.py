"""Strava resources as declarations: the specs (:mod:`.spec`) and the catalog of every entity (:mod:`.catalog`)."""

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
