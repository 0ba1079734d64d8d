"""``POST /oauth/token``: refresh-token rotation and one-time authorization codes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulator.app import TOKEN_LIFETIME, EmulatorApp
from emulator.state import AthleteState
from emulator.wire import Response, form_params, json_response, strava_error

__all__ = ["TOKEN_PATHS", "issue_tokens", "token"]

TOKEN_PATHS = frozenset({"/oauth/token", "/api/v3/oauth/token"})  # Strava answers on both


def token(app: EmulatorApp, query: dict[str, str], headers: Mapping[str, str], body: bytes) -> Response:
    """Answer a token grant (refresh token or authorization code); 400s as Strava."""
    params = form_params(query, headers, body)
    if params is None:
        return json_response(400, strava_error("Bad Request", "Application", "body", "invalid"))
    if params.get("client_id") != app.client_id:
        return json_response(400, strava_error("Bad Request", "Application", "client_id", "invalid"))
    if params.get("client_secret") != app.client_secret:
        return json_response(400, strava_error("Bad Request", "Application", "client_secret", "invalid"))
    grant = params.get("grant_type")
    if grant == "refresh_token":
        given = params.get("refresh_token")
        st = next((s for s in app._athletes if given and s.refresh_token == given), None)
        if st is None:
            return json_response(400, strava_error("Bad Request", "RefreshToken", "refresh_token", "invalid"))
        return json_response(200, issue_tokens(app, st))
    if grant == "authorization_code":
        code = params.get("code")
        st = app._codes.pop(code, None) if code else None
        if st is None:
            return json_response(400, strava_error("Bad Request", "AuthorizationCode", "code", "invalid"))
        st.scope = app._code_scopes.pop(str(code), st.scope)
        tokens = issue_tokens(app, st)
        tokens["athlete"] = st.summary()
        return json_response(200, tokens)
    return json_response(400, strava_error("Bad Request", "Application", "grant_type", "invalid"))


def issue_tokens(app: EmulatorApp, st: AthleteState) -> dict[str, Any]:
    """Issue a new access and refresh token to ``st`` (the old refresh token stops working)."""
    now = app._now()
    access = app._new_access_token(st)
    st.refresh_token = app._new_token("refresh")
    return {
        "token_type": "Bearer",
        "access_token": access,
        "expires_at": now + TOKEN_LIFETIME,
        "expires_in": TOKEN_LIFETIME,
        "refresh_token": st.refresh_token,
    }
