"""The AMI client against a fake Asterisk replaying the recorded Asterisk 23 session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent.adapters.ami import (
    AmiActionError,
    AmiClient,
    AmiLoginError,
    AmiPermissionDenied,
    AmiUnavailable,
    ExtensionState,
    OriginateResult,
)
from agent.config import AmiConfig
from tests.fakes.fake_ami import SESSION, FakeAmi

pytestmark = pytest.mark.skipif(not SESSION.exists(), reason="AMI recording not found")


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmi]:
    server = FakeAmi()
    await server.start()
    yield server
    await server.stop()


def _cfg(fake: FakeAmi, password: str = "secret", user: str = "medagent") -> AmiConfig:
    return AmiConfig(
        enabled=True, port=fake.port, username=user, password=password, reconnect_max_s=0.2
    )


@pytest.fixture
async def ami(fake: FakeAmi) -> AsyncIterator[AmiClient]:
    client = AmiClient(_cfg(fake))
    await client.connect()
    yield client
    await client.close()


async def test_login_ok(fake: FakeAmi, ami: AmiClient) -> None:
    assert ami.connected
    assert fake.logins == 1
    login = fake.received[0]
    assert login["Action"] == "Login" and login["Username"] == "medagent"
    await ami.ping()


async def test_failed_login_names_the_user_and_the_fix(fake: FakeAmi) -> None:
    client = AmiClient(_cfg(fake, password="wrong"))
    with pytest.raises(AmiLoginError) as err:
        await client.connect()
    assert str(err.value) == (
        "AMI login refused for user 'medagent' (Authentication failed): set ami.password to the "
        "secret of [medagent] in manager.conf, and check its permit= allows this host"
    )
    assert not client.connected
    await client.close()


async def test_nothing_listening_is_unavailable() -> None:
    server = FakeAmi()
    port = await server.start()
    await server.stop()  # the port is now closed
    client = AmiClient(AmiConfig(enabled=True, port=port, password="secret"))
    with pytest.raises(AmiUnavailable, match=f"cannot reach AMI at 127.0.0.1:{port}"):
        await client.connect()
    await client.close()


@pytest.mark.parametrize(
    ("exten", "expected"),
    [
        ("6001", ExtensionState(0, "Idle", "PJSIP/clinician100")),
        ("6003", ExtensionState(4, "Unavailable", "PJSIP/clinician101")),
        ("999", ExtensionState(-1, "Unknown", "")),
    ],
)
async def test_extension_state(ami: AmiClient, exten: str, expected: ExtensionState) -> None:
    assert await ami.extension_state(exten, "medical-inbound") == expected


async def test_device_state_list(ami: AmiClient) -> None:
    assert await ami.device_states() == {
        "PJSIP/caller": "NOT_INUSE",
        "PJSIP/clinician101": "UNAVAILABLE",
        "PJSIP/clinician100": "NOT_INUSE",
    }
    assert await ami.device_state("PJSIP/clinician101") == "UNAVAILABLE"
    assert await ami.device_state("PJSIP/nobody") == "UNKNOWN"


async def test_originate_async_answered_waits_for_originate_response(ami: AmiClient) -> None:
    events: list[dict[str, Any]] = []
    ami.subscribe("Dial*", events.append)
    result = await ami.originate(
        "PJSIP/clinician100",
        "300",
        "medical-inbound",
        caller_id='"Med Agent" <100>',
        timeout_s=15,
        variables={"ORIGIN": "ami"},
    )
    assert result == OriginateResult(
        success=True,
        reason=4,
        reason_text="answered",
        channel="PJSIP/clinician100-0000000d",
        uniqueid="1795737732.26",
    )
    # The call's events went to subscribers, not into the action's answer.
    await asyncio.sleep(0.05)
    assert [e["Event"] for e in events] == ["DialBegin", "DialState", "DialEnd"]


async def test_originate_async_to_unavailable_phone_fails(ami: AmiClient) -> None:
    result = await ami.originate("PJSIP/clinician101", "300", "medical-inbound", timeout_s=5)
    assert (result.success, result.reason, result.reason_text) == (False, 0, "failed")


async def test_originate_sync_failure(ami: AmiClient) -> None:
    result = await ami.originate(
        "PJSIP/clinician101", "300", "medical-inbound", timeout_s=5, async_=False
    )
    assert (result.success, result.reason_text) == (False, "Originate failed")


async def test_unknown_action_is_an_error_with_asterisks_message(ami: AmiClient) -> None:
    with pytest.raises(AmiActionError) as err:
        await ami.action({"Action": "NoSuchAction"})
    assert err.value.message == (
        "Invalid/unknown command: NoSuchAction. Use Action: ListCommands to show available "
        "commands."
    )
    # The session survives it.
    assert (await ami.extension_state("6001", "medical-inbound")).status == 0


async def test_permission_denied_is_its_own_error(fake: FakeAmi) -> None:
    fake.denied = {"originate"}
    client = AmiClient(_cfg(fake))
    await client.connect()
    try:
        with pytest.raises(AmiPermissionDenied, match="AMI Originate: Permission denied"):
            await client.originate("PJSIP/clinician101", "300", "medical-inbound", timeout_s=5)
    finally:
        await client.close()


async def test_drop_and_return_reconnects_and_features_come_back(fake: FakeAmi) -> None:
    client = AmiClient(_cfg(fake), reconnect_initial_s=0.02, jitter=lambda: 0.0)
    with capture_logs() as logs:
        client.start()
        await client.wait_connected(2)
        assert (await client.extension_state("6001", "medical-inbound")).text == "Idle"

        await fake.stop()  # Asterisk goes away: connection drops, and the port refuses
        for _ in range(100):
            if not client.connected:
                break
            await asyncio.sleep(0.01)
        assert not client.connected
        with pytest.raises(AmiUnavailable, match="AMI ExtensionState: not connected"):
            await client.extension_state("6001", "medical-inbound")
        await asyncio.sleep(0.3)  # several refused reconnects

        await fake.start()  # same port
        await client.wait_connected(2)
        assert (await client.extension_state("6003", "medical-inbound")).status == 4
        assert client.connects == 2
        await client.close()
    events = [e["event"] for e in logs]
    # Lost once (however many retries failed), back once.
    assert events.count("ami connection lost; reconnecting") == 1
    assert events.count("ami connection back") == 1


async def test_background_client_keeps_retrying_a_wrong_password_without_spamming_logs(
    fake: FakeAmi,
) -> None:
    client = AmiClient(_cfg(fake, password="wrong"), reconnect_initial_s=0.01, jitter=lambda: 0.0)
    with capture_logs() as logs:
        client.start()
        await asyncio.sleep(0.4)
        assert not client.connected
        await client.close()
    assert len([e for e in fake.received if e["Action"] == "Login"]) >= 2
    warnings = [e for e in logs if e["event"].startswith("ami unavailable")]
    assert len(warnings) == 1 and warnings[0]["code"] == "ami_login"


async def test_an_originate_cut_off_by_a_drop_fails_at_once(fake: FakeAmi) -> None:
    fake.hold = {"originate"}  # queued, then the phone "rings" until the drop
    client = AmiClient(_cfg(fake))
    await client.connect()
    try:
        call = asyncio.ensure_future(
            client.originate("PJSIP/clinician101", "300", "medical-inbound", timeout_s=5)
        )
        await asyncio.sleep(0.05)
        assert not call.done()
        await fake.drop()
        with pytest.raises(AmiUnavailable, match="AMI Originate: AMI connection lost"):
            await asyncio.wait_for(call, 1.0)  # not the 10 s ring-time bound
    finally:
        await client.close()
