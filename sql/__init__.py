"""The SQL of strava-elt: load, model, validation and dashboard statements, shipped as package data.

Read them through :func:`tasks.warehouse.read_sql` (``importlib.resources``), never by a path
relative to a checkout: installed from a wheel, this folder lives in site-packages.
"""
