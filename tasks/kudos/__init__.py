"""Kudos: a model that predicts an activity's kudos, trained, evaluated and promoted per athlete."""

from __future__ import annotations

from tasks.kudos.model import (
    FEATURES,
    KudosModelError,
    athlete_root,
    latest_pointer,
    load_latest_model,
    predict_kudos,
    promote,
    raw_features,
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
    "raw_features",
    "read_activities",
    "save_candidate",
    "train_and_evaluate",
]
