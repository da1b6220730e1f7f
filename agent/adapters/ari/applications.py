"""What ARI says about the application and the server: ``/applications``, ``/endpoints``,
``/deviceStates``, ``/asterisk``. Read-only: the supervisor reconciles against the application after
a reconnect, the call checks an endpoint before transferring, ``medagent check`` asks the rest.
"""

from __future__ import annotations

from typing import Any

from agent.adapters.ari.models import Application, DeviceState, Endpoint
from agent.adapters.ari.rest import AriRest, seg


class ApplicationOperations(AriRest):
    """Queries of application and server state; :class:`~agent.adapters.ari.client.AriClient`
    inherits them."""

    async def get_application(self, app: str | None = None) -> Application:
        """The application's subscriptions: ``channel_ids`` are the channels in Stasis, which
        is how the supervisor reconciles after a reconnect."""
        return await self._get_model(Application, f"/applications/{seg(app or self._cfg.app)}")

    async def get_endpoint(self, tech: str, resource: str) -> Endpoint:
        return await self._get_model(Endpoint, f"/endpoints/{seg(tech)}/{seg(resource)}")

    async def get_device_state(self, name: str) -> DeviceState:
        return await self._get_model(DeviceState, f"/deviceStates/{seg(name)}")

    async def get_asterisk_info(self) -> dict[str, Any]:
        return await self._get_object("/asterisk/info")

    async def ping(self) -> dict[str, Any]:
        return await self._get_object("/asterisk/ping")
