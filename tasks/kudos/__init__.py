"""Kudos: a model that predicts an activity's kudos, trained, evaluated and promoted per athlete."""

from __future__ import annotations

from tasks.kudos.model import (
    DETAIL_FEATURES,
    FEATURES,
    KudosModelError,
    athlete_root,
    feature_frame,
    latest_pointer,
    load_latest_model,
    predict_kudos,
    promote,
    read_activities,
    read_details,
    save_candidate,
    train_and_evaluate,
)

__all__ = [
    "DETAIL_FEATURES",
    "FEATURES",
    "KudosModelError",
    "athlete_root",
    "latest_pointer",
    "load_latest_model",
    "predict_kudos",
    "promote",
    "feature_frame",
    "read_activities",
    "read_details",
    "save_candidate",
    "train_and_evaluate",
]
