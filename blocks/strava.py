"""Strava configuration: the application's id and secret, each athlete's refresh token.

The blocks hold what a user configures and the token's life in the block document (a rotated
refresh token written back, an athlete marked revoked). They speak no HTTP: the Strava API
package builds the authorised client from a block (:func:`tasks.strava.open_client`,
:func:`tasks.strava.auth.athlete_http_client`), as blocks import nothing from ``tasks/``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator, model_validator

from blocks.prefect_compat import block_document_id, block_document_name, call_sync, check_before_saving

STRAVA_BASE_URL = "https://www.strava.com"
DEFAULT_REDIRECT_URI = "http://localhost/exchange_token"
"""Strava allows any redirect to ``localhost``: the browser shows the code in the address bar."""
DEFAULT_SCOPE = "read,activity:read_all"
REQUIRED_SCOPE = "activity:read_all"
"""Without it, activities visible only to the athlete (or followers) are missing."""

logger = logging.getLogger(__name__)


def normalise_base_url(value: str) -> str:
    """Strava's root: a trailing slash or ``/api/v3`` (the API root people copy) is dropped."""
    base = value.strip().rstrip("/").removesuffix("/api/v3").rstrip("/")
    if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).netloc:
        raise ValueError(f"base URL {value!r} is not an http(s) URL; Strava's is {STRAVA_BASE_URL}")
    return base


def _base_url_field() -> Any:
    return Field(
        default=STRAVA_BASE_URL,
        title="Base URL",
        description=(
            "Strava's base URL, https://www.strava.com (the API is under /api/v3, OAuth under /oauth; "
            "https://www.strava.com/api/v3 is accepted too). Point it at the emulator locally."
        ),
    )


def _timeout_field() -> Any:
    return Field(
        default=30.0,
        gt=0,
        title="Timeout (seconds)",
        description=(
            "Deadline of every HTTP request to Strava (API and token endpoint), in seconds: connecting, "
            "the headers and the whole body must be done by then, or the request fails as a timeout "
            "and is retried."
        ),
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class StravaApplication(Block):
    """A Strava API application: its client id and secret, shared by the athletes who authorised it.

    Each athlete is a :class:`StravaCredentials` block that references this one (block name
    ``<application block>-athlete-<athlete id>``) and holds only that athlete's refresh token,
    so the secret is kept once. The limits are the application's, shared by all its athletes.
    """

    _block_type_name = "Strava Application"
    _block_type_slug = "strava-application"
    _logo_url = "https://upload.wikimedia.org/wikipedia/commons/c/cb/Strava_Logo.svg"  # type: ignore[assignment]
    _description = "A Strava API application (client id and secret) shared by the athletes who authorised it."

    client_id: str = Field(
        title="Client ID", description="Client ID of your Strava API application (strava.com/settings/api)."
    )
    client_secret: SecretStr = Field(title="Client secret", description="Client secret of your Strava API application.")
    base_url: str = _base_url_field()
    timeout_seconds: float = _timeout_field()
    read_limits: tuple[int, int] = Field(
        default=(100, 1000),
        title="Read limits",
        description=(
            "The application's read (GET) budget: requests per 15 minutes and per day "
            "(strava.com/settings/api shows yours), shared by all its athletes."
        ),
    )
    overall_limits: tuple[int, int] = Field(
        default=(200, 2000),
        title="Overall limits",
        description=(
            "The application's overall budget: requests per 15 minutes and per day, shared by all its athletes."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        return normalise_base_url(value)

    @field_validator("read_limits", "overall_limits")
    @classmethod
    def _positive_limits(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) <= 0 or value[0] > value[1]:
            raise ValueError(
                f"limits {value} must be (per 15 minutes, per day), both > 0, the first not above the second"
            )
        return value

    @property
    def api_url(self) -> str:
        """The API v3 root."""
        return self.base_url.rstrip("/") + "/api/v3"

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint."""
        return self.base_url.rstrip("/") + "/oauth/token"

    def athlete_block_name(self, athlete_id: int) -> str:
        """The name of the credentials block of ``athlete_id``: ``<this block's name>-athlete-<id>``.

        Raises:
            ValueError: This application block was never saved (it has no name yet).

        """
        if not self.block_name:
            raise ValueError("Save the StravaApplication block (application.save(name)) before adding athletes to it.")
        return athlete_block_name(self.block_name, athlete_id)

    @property
    def block_name(self) -> str | None:
        """The name this block was saved or loaded under (None before the first save)."""
        return block_document_name(self)

    def client_credentials(self) -> dict[str, str]:
        """``client_id`` and ``client_secret`` as Strava's application-level endpoints take them.

        Push subscriptions authenticate this way; pass the dict as form data or query, never log it.
        """
        return {"client_id": self.client_id, "client_secret": self.client_secret.get_secret_value()}

    @property
    def deadline_seconds(self) -> float:
        """The deadline of every HTTP request to Strava, in seconds."""
        return self.timeout_seconds

    def oauth_client(self) -> tuple[str, SecretStr]:
        """The application's client id and secret, as the token endpoint takes them."""
        return self.client_id, self.client_secret


def athlete_block_name(application_block: str, athlete_id: int) -> str:
    """``<application block>-athlete-<athlete id>``: the credentials block of an application's athlete."""
    return f"{application_block}-athlete-{int(athlete_id)}"


def _application_saved_first(block: StravaCredentials) -> None:
    """Refuse to save an athlete's block whose application is unsaved (it would be stored inline, secret and all)."""
    if block.application is not None and block_document_id(block.application) is None:
        raise ValueError(
            "Save the StravaApplication block first (application.save(name)): an athlete's block "
            "references the saved application and never holds a copy of its client secret."
        )


@check_before_saving(_application_saved_first)
class StravaCredentials(Block):
    """OAuth credentials of a Strava API application and the athlete who authorised it.

    Strava rotates refresh tokens: whenever it issues a new one, the block saves it back to
    itself before the new access token is used, so the next run can still authenticate.

    Two setups: a single block holding the client id and secret itself, or one block per
    athlete referencing a saved :class:`StravaApplication` (``application``), which then
    supplies the client id, secret, base URL and timeout. An application's athlete whose
    refresh token Strava rejects is marked ``revoked`` (when, why) and saved, and fails
    at once with :class:`~tasks.strava.errors.AthleteRevoked` until ``strava-elt auth`` renews it.
    """

    _block_type_name = "Strava Credentials"
    _block_type_slug = "strava-credentials"
    _logo_url = "https://upload.wikimedia.org/wikipedia/commons/c/cb/Strava_Logo.svg"  # type: ignore[assignment]
    _description = "OAuth client and rotating refresh token for the Strava API v3."

    client_id: str | None = Field(
        default=None,
        title="Client ID",
        description=(
            "Client ID of your Strava API application (strava.com/settings/api). Leave empty when "
            "the block references an application."
        ),
    )
    client_secret: SecretStr | None = Field(
        default=None,
        title="Client secret",
        description=(
            "Client secret of your Strava API application. Leave empty when the block references an application."
        ),
    )
    refresh_token: SecretStr = Field(
        title="Refresh token",
        description=(
            "Refresh token of the athlete, granted with scope activity:read_all "
            "(`strava-elt auth` obtains it). Rotated by Strava and saved back here."
        ),
    )
    base_url: str = _base_url_field()
    timeout_seconds: float = _timeout_field()
    application: StravaApplication | None = Field(
        default=None,
        title="Application",
        description=(
            "The Strava Application block this athlete authorised: it supplies the client id, secret, "
            "base URL and timeout (the fields above are then unused). Empty for a single-athlete setup."
        ),
    )
    athlete_id: int | None = Field(
        default=None, title="Athlete ID", description="Strava id of the athlete (set by `strava-elt auth`)."
    )
    athlete_name: str | None = Field(
        default=None,
        title="Athlete name",
        description="The athlete's name as Strava sent it at authorisation (shown on the index page).",
    )
    status: Literal["active", "revoked"] = Field(
        default="active",
        title="Status",
        description=(
            "active, or revoked: Strava rejected the refresh token (the athlete withdrew the authorisation); "
            "runs skip the athlete until `strava-elt auth --application A` authorises again."
        ),
    )
    revoked_at: str | None = Field(
        default=None, title="Revoked at", description="When the refresh token was found revoked (ISO 8601, UTC)."
    )
    revoked_reason: str | None = Field(
        default=None, title="Revoked reason", description="Why the athlete was marked revoked (Strava's answer)."
    )

    @field_validator("base_url")
    @classmethod
    def _normalise_base_url(cls, value: str) -> str:
        return normalise_base_url(value)

    @model_validator(mode="after")
    def _client_from_one_place(self) -> StravaCredentials:
        if self.application is None and (not self.client_id or self.client_secret is None):
            raise ValueError(
                "a StravaCredentials block needs the client id and client secret of its Strava API "
                "application, or an application (a saved Strava Application block) that holds them"
            )
        if self.application is not None and self.client_secret is not None and self.client_secret.get_secret_value():
            raise ValueError(
                "a StravaCredentials block that references an application holds no client secret of its own: "
                "leave client_secret empty (the application block keeps it)"
            )
        return self

    @property
    def api_url(self) -> str:
        """The API v3 root (the application's, when the block references one)."""
        return self._base().rstrip("/") + "/api/v3"

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint (the application's, when the block references one)."""
        return self._base().rstrip("/") + "/oauth/token"

    def _base(self) -> str:
        return self.application.base_url if self.application is not None else self.base_url

    @property
    def deadline_seconds(self) -> float:
        """The deadline of every HTTP request to Strava (the application's, when the block references one)."""
        return self.application.timeout_seconds if self.application is not None else self.timeout_seconds

    def oauth_client(self) -> tuple[str, SecretStr]:
        """The client id and secret the token endpoint takes (the application's, when referenced)."""
        if self.application is not None:
            return self.application.oauth_client()
        assert self.client_id is not None and self.client_secret is not None  # the model validator checked
        return self.client_id, self.client_secret

    @property
    def block_name(self) -> str | None:
        """The name this block was saved or loaded under (None before the first save)."""
        return block_document_name(self)

    def mark_revoked(self, reason: str, at: datetime | None = None) -> None:
        """Mark the athlete revoked (when, why) and save the block (only this one: the application is a reference)."""
        self.status = "revoked"
        self.revoked_at = (at or _utcnow()).astimezone(UTC).isoformat()
        self.revoked_reason = reason
        if self.block_name:
            self._save_now(self.block_name)
        logger.warning("Marked the athlete of block %r revoked: %s", self.block_name, reason)

    def reactivate(self, refresh_token: str) -> None:
        """Take a new refresh token, clear the revocation and save the block."""
        self.refresh_token = SecretStr(refresh_token)
        self.status = "active"
        self.revoked_at = None
        self.revoked_reason = None
        if self.block_name:
            self._save_now(self.block_name)

    def store_refresh_token(self, refresh_token: str) -> None:
        """Keep the refresh token Strava just issued; when it rotated, write it into the saved block.

        :func:`tasks.strava.auth.refresh_access_token` calls it before the new access token is
        used, so the next run can still authenticate.
        """
        if refresh_token == self.refresh_token.get_secret_value():
            return
        self.refresh_token = SecretStr(refresh_token)
        self._persist()

    def _persist(self) -> None:
        name = self.block_name
        if not name:
            logger.warning(
                "Strava rotated the refresh token but this StravaCredentials block was never "
                "saved; save it (block.save(name)) or the next run cannot authenticate."
            )
            return
        if not self._patch_refresh_token():
            self._save_now(name)
        logger.info("Saved the rotated Strava refresh token to block %r", name)

    def _patch_refresh_token(self) -> bool:
        """Write only the new refresh token into the block's saved document: one request.

        A full ``save`` checks the block type and both schemas first (six requests, about a
        third of a second); the document and every other field stay as they are, and nested
        blocks (the application) stay referenced: the update names them again, as the server
        drops a reference it does not repeat. False when the block has no saved document (it was
        built in memory) or the document is gone: then the caller saves the whole block.
        """
        document_id = block_document_id(self)
        if document_id is None:
            return False
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import BlockDocumentUpdate
        from prefect.exceptions import ObjectNotFound

        data: dict[str, Any] = {"refresh_token": self.refresh_token.get_secret_value()}
        for field_name in type(self).model_fields:
            nested = getattr(self, field_name)
            if isinstance(nested, Block):  # the server drops a reference the update does not repeat
                if block_document_id(nested) is None:
                    return False
                data[field_name] = {"$ref": {"block_document_id": str(block_document_id(nested))}}
        update = BlockDocumentUpdate(data=data, merge_existing_data=True)
        try:
            with get_client(sync_client=True) as client:
                client.update_block_document(document_id, update)
        except ObjectNotFound:
            return False
        return True

    def _save_now(self, name: str) -> None:
        """Save synchronously, also when called under an event loop (an async flow, a webhook handler)."""
        call_sync(self.save, name, overwrite=True)


def authorize_url(
    client_id: str,
    *,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    scope: str = DEFAULT_SCOPE,
    base_url: str = STRAVA_BASE_URL,
) -> str:
    """The page where the athlete authorises the application (``approval_prompt=force``)."""
    query = urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "approval_prompt": "force",
            "scope": scope,
        },
        safe=":/,",
    )
    return f"{normalise_base_url(base_url)}/oauth/authorize?{query}"


def parse_authorization_response(text: str) -> tuple[str, str | None]:
    """The code, and the granted scope when known, from the code itself or the redirect URL.

    Raises:
        ValueError: Nothing pasted, no ``code`` in the URL, or Strava's ``error=access_denied``.

    """
    text = text.strip()
    if not text:
        raise ValueError("No authorization code given.")
    if "=" not in text:
        return text, None
    query = parse_qs(urlsplit(text).query if "?" in text else text)
    if "error" in query:
        raise ValueError(
            f"Strava redirected with error={query['error'][0]!r}: the authorisation was not "
            "granted. Open the URL again and click Authorize."
        )
    codes = query.get("code")
    if not codes or not codes[0].strip():
        raise ValueError("The pasted URL has no code=...; paste the whole address Strava redirected to.")
    scopes = query.get("scope")
    return codes[0].strip(), scopes[0] if scopes else None
