"""The REST half of ARI: one httpx client, ARI's parameter conventions, and its errors mapped to ours.

:class:`AriRest` is the base the resource operations (``channels.py``, ``bridges.py``,
``applications.py``) build on: each operation is a path and its parameters, and everything that is
the same for all of them lives here.

- **Credentials** go only in the ``Authorization: Basic`` header (:func:`basic_auth`, shared with the
  events websocket): URLs reach logs.
- **Errors**: a transport failure or timeout is :class:`~agent.errors.AriConnectionError`; an HTTP
  status ≥ 400 is the ``agent.errors`` class for that status (``ari_http_error``) carrying ARI's own
  message, which is ``{"message": ...}`` except for the ``{"error": "Allocation failed"}`` of a 500.
  A body that is not JSON, or not the model we expect, is :class:`~agent.errors.AriError`.
- **Parameters** go in the query string, ``None`` left out and booleans spelled ``true``/``false``;
  channel variables are the one thing sent as a JSON body.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from agent.adapters.ari.models import parse_model
from agent.config import AriConfig
from agent.errors import AriConnectionError, AriError, ari_http_error

M = TypeVar("M")


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` header value for REST and the websocket upgrade alike."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class AriRest:
    """Requests to ARI's REST interface at ``cfg.url``; the resource operations subclass it."""

    def __init__(self, cfg: AriConfig, auth_header: str) -> None:
        self._cfg = cfg
        self._base_url = cfg.url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self._base_url + "/",
            headers={"Authorization": auth_header},
            timeout=cfg.request_timeout_s,
        )

    async def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        query = _query(params or {})
        try:
            response = await self._http.request(
                method, path.lstrip("/"), params=query, json=body if body is not None else None
            )
        except httpx.TimeoutException as exc:
            raise AriConnectionError(
                f"ARI {method} {path}: no answer within {self._cfg.request_timeout_s} s"
            ) from exc
        except httpx.TransportError as exc:
            raise AriConnectionError(
                f"ARI {method} {path}: cannot reach {self._base_url}: {type(exc).__name__}"
            ) from exc
        if response.status_code >= 400:
            raise ari_http_error(
                response.status_code, _error_message(response), method=method, path=path
            )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AriError(f"ARI {method} {path}: response is not JSON") from None

    def _model(self, cls: type[M], body: Any, method: str, path: str) -> M:
        try:
            return parse_model(cls, body)
        except ValueError as exc:
            raise AriError(f"ARI {method} {path}: unexpected response: {exc}") from None

    async def _get_model(
        self, cls: type[M], path: str, params: Mapping[str, Any] | None = None
    ) -> M:
        return self._model(cls, await self._request("GET", path, params), "GET", path)

    async def _post_model(
        self,
        cls: type[M],
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> M:
        return self._model(cls, await self._request("POST", path, params, body), "POST", path)

    async def _get_list(self, cls: type[M], path: str) -> list[M]:
        """``GET`` of a collection (``/channels``, ``/bridges``): a JSON list of ``cls``."""
        body = await self._request("GET", path)
        if not isinstance(body, list):
            raise AriError(f"ARI GET {path}: expected a list")
        return [self._model(cls, item, "GET", path) for item in body]

    async def _get_object(self, path: str) -> dict[str, Any]:
        """``GET`` of an unmodelled JSON object (``/asterisk/info``)."""
        body = await self._request("GET", path)
        if not isinstance(body, dict):
            raise AriError(f"ARI GET {path}: expected an object")
        return body


def seg(value: str) -> str:
    """One path segment: ``PJSIP/clinician100`` as a device name must not become two."""
    return quote(value, safe="")


def csv(value: str | Iterable[str] | None) -> str | None:
    """ARI's ``allowMultiple`` parameters are comma-separated."""
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)


def variables_body(variables: Mapping[str, str] | None) -> dict[str, Any] | None:
    """Channel variables go in the JSON body (``{"variables": {...}}``), not the query string."""
    return None if variables is None else {"variables": dict(variables)}


def _query(params: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def _error_message(response: httpx.Response) -> str:
    """ARI's own error text: ``{"message": ...}``, but ``{"error": ...}`` for "Allocation failed"."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "error"):
            if isinstance(body.get(key), str):
                text: str = body[key]
                return text
    return response.reason_phrase or f"HTTP {response.status_code}"
