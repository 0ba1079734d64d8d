-- Migration: stats history tables created before athlete scoping get the athlete_id column.
ALTER TABLE {history} ADD COLUMN athlete_id BIGINT
