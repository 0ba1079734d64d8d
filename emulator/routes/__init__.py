"""The emulator's routes, one module per area; :mod:`.table` is the dispatch table.

Token (:mod:`.oauth`) and push-subscription (:mod:`.push`) requests authenticate the
application; every other ``/api/v3`` route is an :class:`~emulator.routes.base.ApiRoute` that
authenticates an athlete and counts against the rate budget: :mod:`.athlete` (athlete, zones,
stats), :mod:`.activities` (listing, detail, streams), :mod:`.gear`.
"""
