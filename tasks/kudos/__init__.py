"""Kudos: a model that predicts an activity's kudos, trained, evaluated and promoted per athlete."""

from __future__ import annotations

from tasks.kudos.model import (
    FEATURES,
    KudosModelError,
    athlete_root,
    feature_frame,
    latest_pointer,
    load_latest_model,
    predict_kudos,
    promote,
    read_activities,
    save_candidate,
    train_and_evaluate,
)

__all__ = [
    "FEATURES",
    "KudosModelError",
    "athlete_root",
    "latest_pointer",
    "load_latest_model",
    "predict_kudos",
    "promote",
    "feature_frame",
    "read_activities",
    "save_candidate",
    "train_and_evaluate",
]
