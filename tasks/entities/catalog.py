"""Every Strava resource the pipeline loads, declared once (:class:`~tasks.entities.spec.EntitySpec`).

The activity summary is one spec among the others: its columns are :mod:`tasks.warehouse.schema`'s,
unchanged. The enrichment entities (detail and what is nested in it, streams, gear, stats, zones)
have their own tables, each with ``athlete_id``; the ranges are what a real device or athlete can
produce (a heart rate of 10^20 does not fit and is loaded as NULL, and listed).
Docs: docs/entities.md (the resources, and how to add one).
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import sqlalchemy as sa

from tasks.entities.spec import (
    EntitySpec,
    Merge,
    Paging,
    bool_,
    context,
    count,
    ctx_id,
    ctx_text,
    ctx_timestamp,
    float_,
    id_,
    int_,
    key_text,
    measure,
    text,
    timestamp,
)
from tasks.warehouse import schema
from tasks.warehouse.schema import Column

PIPELINE_EXTRACTED_AT = ctx_timestamp("extracted_at")
"""When the run read the resource (every enrichment table has it)."""
ROW_HASH = Column("row_hash", sa.String(32), pa.string(), lambda _: None)
"""Fingerprint of the API columns (set by the flattener): "updated" means a value changed."""

ACTIVITIES = EntitySpec(
    name="activities",
    table=schema.ACTIVITY_TABLE,
    columns=schema.ALL_COLUMNS,
    key=("id",),
    merge=Merge.UPSERT_WINDOW,
    paging=Paging.LIST,
    path="/athlete/activities",
    params={"per_page": 200},
    lake_prefix="activities",
    mutable=True,
    description="The activity summaries (SummaryActivity), incremental from the watermark.",
)

_EFFORT_TIMES = (
    count("elapsed_time"),
    count("moving_time"),
    measure("distance"),
    timestamp("start_date"),
    timestamp("start_date_local", aware=False),
    count("start_index"),
    count("end_index"),
)

DETAIL = EntitySpec(
    name="activity_detail",
    table="strava_activity_detail",
    columns=(
        id_("activity_id", "id"),
        id_("athlete_id", "athlete.id"),
        text("description"),
        measure("calories"),
        text("device_name", high=1024),
        key_text("gear_id"),
        text("gear_name", "gear.name", high=1024),
        count("photo_count", "photos.count"),
        count("total_photo_count"),
        count("pr_count"),
        count("achievement_count"),
        count("kudos_count"),
        count("comment_count"),
        count("segment_effort_count", "__segment_effort_count"),
        count("best_effort_count", "__best_effort_count"),
        count("lap_count", "__lap_count"),
        text("polyline", "map.polyline"),
        text("embed_token", high=64),
        bool_("has_heartrate"),
        bool_("device_watts"),
        PIPELINE_EXTRACTED_AT,
        ROW_HASH,
    ),
    key=("activity_id",),
    merge=Merge.UPSERT,
    paging=Paging.SINGLE,
    path="/activities/{activity_id}",
    params={"include_all_efforts": "true"},
    parent="activities",
    parent_column="activity_id",
    lake_prefix="activity_detail",
    mutable=True,
    description="DetailedActivity: one request per activity; re-fetched when the activity changes.",
)

LAPS = EntitySpec(
    name="activity_laps",
    table="strava_activity_laps",
    columns=(
        id_("id"),
        ctx_id("activity_id"),
        ctx_id("athlete_id"),
        count("lap_index"),
        count("split"),
        text("name", high=1024),
        *_EFFORT_TIMES,
        measure("total_elevation_gain"),
        measure("average_speed"),
        measure("max_speed"),
        float_("average_heartrate", low=0.0, high=300.0),
        float_("max_heartrate", low=0.0, high=300.0),
        float_("average_cadence", low=0.0, high=300.0),
        float_("average_watts", low=0.0, high=4000.0),
        bool_("device_watts"),
        int_("pace_zone", low=0, high=10),
        PIPELINE_EXTRACTED_AT,
    ),
    key=("id",),
    merge=Merge.REPLACE_CHILDREN,
    paging=Paging.NESTED,
    source="laps",
    parent="activity_detail",
    parent_column="activity_id",
    lake_prefix="activity_detail",
    description="The detail's laps (as recorded by the device, or Strava's auto laps).",
)

_SPLIT_COLUMNS = (
    ctx_id("activity_id"),
    count("split"),
    ctx_id("athlete_id"),
    measure("distance"),
    count("elapsed_time"),
    count("moving_time"),
    float_("elevation_difference", low=-10_000.0, high=10_000.0),
    measure("average_speed"),
    measure("average_grade_adjusted_speed"),
    float_("average_heartrate", low=0.0, high=300.0),
    int_("pace_zone", low=0, high=10),
    PIPELINE_EXTRACTED_AT,
)

SPLITS_METRIC = EntitySpec(
    name="activity_splits_metric",
    table="strava_activity_splits_metric",
    columns=_SPLIT_COLUMNS,
    key=("activity_id", "split"),
    merge=Merge.REPLACE_CHILDREN,
    paging=Paging.NESTED,
    source="splits_metric",
    parent="activity_detail",
    parent_column="activity_id",
    lake_prefix="activity_detail",
    description="Kilometre splits (runs, walks, hikes).",
)

SPLITS_STANDARD = EntitySpec(
    name="activity_splits_standard",
    table="strava_activity_splits_standard",
    columns=_SPLIT_COLUMNS,
    key=("activity_id", "split"),
    merge=Merge.REPLACE_CHILDREN,
    paging=Paging.NESTED,
    source="splits_standard",
    parent="activity_detail",
    parent_column="activity_id",
    lake_prefix="activity_detail",
    description="Mile splits (runs, walks, hikes).",
)

BEST_EFFORTS = EntitySpec(
    name="activity_best_efforts",
    table="strava_activity_best_efforts",
    columns=(
        id_("id"),
        ctx_id("activity_id"),
        ctx_id("athlete_id"),
        text("name", high=256),
        *_EFFORT_TIMES,
        int_("pr_rank", low=1, high=3),
        PIPELINE_EXTRACTED_AT,
    ),
    key=("id",),
    merge=Merge.REPLACE_CHILDREN,
    paging=Paging.NESTED,
    source="best_efforts",
    parent="activity_detail",
    parent_column="activity_id",
    lake_prefix="activity_detail",
    description="Strava's best efforts over standard distances (runs): 400m ... 50k.",
)

SEGMENT_EFFORTS = EntitySpec(
    name="activity_segment_efforts",
    table="strava_activity_segment_efforts",
    columns=(
        id_("id"),
        ctx_id("activity_id"),
        ctx_id("athlete_id"),
        id_("segment_id", "segment.id"),
        text("segment_name", "segment.name", high=1024),
        text("segment_activity_type", "segment.activity_type", high=64),
        measure("segment_distance", "segment.distance"),
        float_("segment_average_grade", "segment.average_grade", low=-100.0, high=100.0),
        text("segment_city", "segment.city", high=1024),
        bool_("segment_private", "segment.private"),
        *_EFFORT_TIMES,
        float_("average_heartrate", low=0.0, high=300.0),
        float_("max_heartrate", low=0.0, high=300.0),
        float_("average_cadence", low=0.0, high=300.0),
        float_("average_watts", low=0.0, high=4000.0),
        bool_("device_watts"),
        int_("pr_rank", low=1, high=3),
        int_("kom_rank", low=1, high=10),
        bool_("hidden"),
        PIPELINE_EXTRACTED_AT,
    ),
    key=("id",),
    merge=Merge.REPLACE_CHILDREN,
    paging=Paging.NESTED,
    source="segment_efforts",
    parent="activity_detail",
    parent_column="activity_id",
    lake_prefix="activity_detail",
    description="Every segment effort of the activity (include_all_efforts=true), with its PR rank.",
)

STREAM_KEYS: tuple[str, ...] = (
    "time",
    "distance",
    "latlng",
    "altitude",
    "velocity_smooth",
    "heartrate",
    "cadence",
    "watts",
    "temp",
    "moving",
    "grade_smooth",
)
"""Every stream type Strava offers (requested with ``keys=``, ``key_by_type=true``)."""

STREAMS = EntitySpec(
    name="activity_streams",
    table="strava_activity_streams",
    columns=(
        ctx_id("activity_id"),
        Column("sample_index", sa.Integer(), pa.int32(), context("sample_index"), 0, schema.INT32[1]),
        ctx_id("athlete_id"),
        count("time"),
        measure("distance"),
        float_("lat", "latlng.0", low=-90.0, high=90.0),
        float_("lng", "latlng.1", low=-180.0, high=180.0),
        float_("altitude", low=-1_000.0, high=10_000.0),
        float_("velocity_smooth", low=0.0, high=200.0),
        int_("heartrate", low=0, high=300),
        int_("cadence", low=0, high=300),
        int_("watts", low=0, high=4000),
        int_("temp", low=-60, high=70),
        bool_("moving"),
        float_("grade_smooth", low=-100.0, high=100.0),
    ),
    key=("activity_id", "sample_index"),
    merge=Merge.REPLACE_CHILDREN,
    paging=Paging.KEYED,
    path="/activities/{activity_id}/streams",
    params={"keys": ",".join(STREAM_KEYS), "key_by_type": "true"},
    parent="activities",
    parent_column="activity_id",
    lake_prefix="activity_streams",
    mutable=False,
    description="Every stream channel at full resolution (one sample a second as recorded), one row a sample.",
)

GEAR = EntitySpec(
    name="gear",
    table="strava_gear",
    columns=(
        key_text("id"),
        ctx_id("athlete_id"),
        text("name", high=1024),
        text("nickname", high=1024),
        text("brand_name", high=1024),
        text("model_name", high=1024),
        text("description"),
        measure("distance"),
        bool_("primary"),
        bool_("retired"),
        int_("frame_type", low=0, high=10),
        int_("resource_state", low=0, high=3),
        PIPELINE_EXTRACTED_AT,
        ROW_HASH,
    ),
    key=("athlete_id", "id"),
    merge=Merge.UPSERT,
    paging=Paging.SINGLE,
    path="/gear/{gear_id}",
    lake_prefix="gear",
    mutable=True,
    description="A bike or a pair of shoes: once per gear id, again when its distance changes.",
)

STATS = EntitySpec(
    name="athlete_stats",
    table="strava_athlete_stats_history",
    columns=(
        ctx_id("athlete_id"),
        ctx_timestamp("observed_at"),
        ctx_text("period", 16),
        ctx_text("sport", 16),
        count("count"),
        measure("distance"),
        count("moving_time"),
        count("elapsed_time"),
        measure("elevation_gain"),
        count("achievement_count"),
        measure("biggest_ride_distance", "__biggest_ride_distance"),
        measure("biggest_climb_elevation_gain", "__biggest_climb_elevation_gain"),
    ),
    key=("athlete_id", "observed_at", "period", "sport"),
    merge=Merge.APPEND,
    paging=Paging.SINGLE,
    path="/athletes/{athlete_id}/stats",
    lake_prefix="athlete_stats",
    description="The athlete's totals (recent = 4 weeks, ytd, all) per sport: one snapshot per run, kept as history.",
)

ZONES = EntitySpec(
    name="athlete_zones",
    table="strava_athlete_zones",
    columns=(
        ctx_id("athlete_id"),
        ctx_text("kind", 16),
        Column("zone", sa.Integer(), pa.int32(), context("zone"), 1, 20),
        int_("min", low=0, high=5000),
        int_("max", low=0, high=5000),
        bool_("custom_zones", "__custom_zones"),
        PIPELINE_EXTRACTED_AT,
    ),
    key=("athlete_id", "kind", "zone"),
    merge=Merge.REPLACE_ATHLETE,
    paging=Paging.SINGLE,
    path="/athlete/zones",
    lake_prefix="athlete_zones",
    description="Heart-rate (and power) zones; ``max`` NULL for the open top zone (Strava sends -1).",
)

SPECS: Mapping[str, EntitySpec] = {
    s.name: s
    for s in (
        ACTIVITIES,
        DETAIL,
        LAPS,
        SPLITS_METRIC,
        SPLITS_STANDARD,
        BEST_EFFORTS,
        SEGMENT_EFFORTS,
        STREAMS,
        GEAR,
        STATS,
        ZONES,
    )
}
"""Every entity by name, parents before children."""

DETAIL_CHILDREN: tuple[EntitySpec, ...] = tuple(s for s in SPECS.values() if s.parent == DETAIL.name)
"""The lists cut from one detail response, each into its own table."""

ENRICHMENT_TABLE = "strava_enrichment_state"
"""Per (athlete, activity): what the enrichment has fetched and when (tasks/enrich); the queue is
the athlete's activities without a row here, or with ``detail_due``, newest first."""


def enrichment_state_table(metadata: sa.MetaData) -> sa.Table:
    """Declare the enrichment's per-activity state (the queue is read from it and the summary table)."""
    return sa.Table(
        ENRICHMENT_TABLE,
        metadata,
        sa.Column("athlete_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("activity_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("detail_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("detail_due", sa.Boolean()),
        sa.Column("streams_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("streams_outcome", sa.String(16)),
        sa.Column("streams_samples", sa.Integer()),
        sa.Column("attempts", sa.Integer()),
        sa.Column("last_error", sa.String(2000)),
    )
