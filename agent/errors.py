"""The exception tree. Every error carries a stable ``code`` that logs and metrics use.

    MedAgentError
    ├── ConfigError                 bad or missing configuration (file, key, what was expected)
    ├── AriError                    talking to Asterisk's REST Interface
    │   ├── AriConnectionError      cannot reach ARI / websocket dropped
    │   └── AriHttpError            ARI answered with an HTTP error (status + ARI's message)
    │       ├── AriBadRequest       400
    │       ├── AriUnauthorized     401
    │       ├── AriNotFound         404
    │       ├── AriConflict         409 (e.g. "Channel not in Stasis application")
    │       ├── AriUnprocessable    422
    │       └── AriServerError      5xx
    ├── MediaError                  RTP/UDP media path (no free port, socket failure)
    ├── EngineError                 a model (VAD, STT, NLU, TTS) failed to load or run
    ├── StoreError                  the record store (PostgreSQL) failed
    ├── CallError                   a call cannot go on (used to hand it back to the dialplan)
    └── IllegalTransition           a state machine (dialog, segmenter) got an event its table has
                                    no row for; its state is left as it was

Wire-format parsers (RTP, AGI lines) raise plain ``ValueError`` with a specific message; the edge that
receives the bytes logs and drops them. These classes are for failures of our own parts.
"""

from __future__ import annotations


class MedAgentError(Exception):
    """Base of every error the agent raises on purpose."""

    code = "medagent_error"


class ConfigError(MedAgentError):
    """The configuration file is missing, unreadable or invalid."""

    code = "config_error"

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = ": ".join(part for part in (file, f"[{key}]" if key else None) if part)
        super().__init__(f"{where}: {message}" if where else message)


class AriError(MedAgentError):
    code = "ari_error"


class AriConnectionError(AriError):
    code = "ari_connection"


class AriHttpError(AriError):
    """ARI answered with an HTTP error. ``message`` is ARI's own text (``{"message": ...}``)."""

    code = "ari_http"

    def __init__(self, status: int, message: str, *, method: str = "", path: str = "") -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        super().__init__(f"ARI {method} {path} -> {status}: {message}".strip())


class AriBadRequest(AriHttpError):
    code = "ari_bad_request"


class AriUnauthorized(AriHttpError):
    code = "ari_unauthorized"


class AriNotFound(AriHttpError):
    code = "ari_not_found"


class AriConflict(AriHttpError):
    code = "ari_conflict"


class AriUnprocessable(AriHttpError):
    code = "ari_unprocessable"


class AriServerError(AriHttpError):
    code = "ari_server_error"


_ARI_BY_STATUS: dict[int, type[AriHttpError]] = {
    400: AriBadRequest,
    401: AriUnauthorized,
    404: AriNotFound,
    409: AriConflict,
    422: AriUnprocessable,
}


def ari_http_error(status: int, message: str, *, method: str = "", path: str = "") -> AriHttpError:
    """The exception class for an ARI HTTP status."""
    cls = _ARI_BY_STATUS.get(status) or (AriServerError if status >= 500 else AriHttpError)
    return cls(status, message, method=method, path=path)


class MediaError(MedAgentError):
    code = "media_error"


class EngineError(MedAgentError):
    code = "engine_error"


class StoreError(MedAgentError):
    code = "store_error"


class CallError(MedAgentError):
    code = "call_error"


class IllegalTransition(MedAgentError):
    """A state machine was handed an event its table has no row for in the current state, or a
    handler tried a move its row does not name. The machine's state is left as it was.

    Raised by the pure core (``agent.core.dialog.machine``, ``agent.core.segmenter``), where it
    means a bug or an event that cannot happen now (a transfer result while nobody is being
    transferred); the call session treats it like any other failure of the call's own task."""

    code = "illegal_transition"

    def __init__(self, state: str, on: str) -> None:
        self.state = state
        self.on = on
        super().__init__(f"no transition from {state} on {on}")
