"""Our asterisk-conf/ files as an admin would install them: no working default credentials, AMI
limited to what the agent needs, nothing listening beyond loopback."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

from real_asterisk import ARI_USER, ASTERISK_CONF, RealAsterisk


async def ami_exchange(port: int, *actions: dict[str, str]) -> list[dict[str, str]]:
    """Send AMI actions in order; return the first reply to each (or {} if the server hung up)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies: list[dict[str, str]] = []
    try:
        banner = await asyncio.wait_for(reader.readline(), 5)
        assert banner.startswith(b"Asterisk Call Manager/")
        for i, action in enumerate(actions):
            lines = "".join(f"{k}: {v}\r\n" for k, v in {**action, "ActionID": str(i)}.items())
            writer.write(lines.encode() + b"\r\n")
            await writer.drain()
            while True:
                block = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                message = dict(
                    line.split(": ", 1) for line in block.decode().split("\r\n") if ": " in line
                )
                if message.get("ActionID") == str(i) and "Response" in message:
                    replies.append(message)
                    break
    except asyncio.IncompleteReadError:
        replies.append({})
    finally:
        writer.close()
        await writer.wait_closed()
    return replies


async def test_ami_user_has_only_the_rights_the_agent_needs(asterisk: RealAsterisk) -> None:
    login = {"Action": "Login", "Username": ARI_USER, "Secret": asterisk.ami_secret}
    ok, state, devices, command, redirect = await ami_exchange(
        asterisk.ports.ami,
        login,
        {"Action": "ExtensionState", "Exten": "s", "Context": "medagent-fallback"},
        {"Action": "DeviceStateList"},
        {"Action": "Command", "Command": "core show version"},
        {"Action": "Redirect", "Channel": "PJSIP/x", "Exten": "s", "Context": "x", "Priority": "1"},
    )
    assert ok["Response"] == "Success"
    assert state["Response"] == "Success"
    assert devices["Response"] == "Success"
    # Running CLI commands or moving calls is not the agent's business over AMI.
    assert command["Response"] == "Error" and command["Message"] == "Permission denied"
    assert redirect["Response"] == "Error" and redirect["Message"] == "Permission denied"


async def test_files_as_shipped_accept_no_login(asterisk: RealAsterisk) -> None:
    """Install our ari.conf/manager.conf unfilled (the placeholders left as shipped) and reload:
    no password logs in. The filled-in test files are put back afterwards."""
    etc = asterisk.astrun / "etc"
    saved = {name: (etc / name).read_text() for name in ("ari.conf", "manager.conf")}
    try:
        for name in saved:
            shipped = (ASTERISK_CONF / name).read_text()
            # Keep the test port; everything else as shipped.
            if name == "manager.conf":
                shipped = shipped.replace("port = 5038", f"port = {asterisk.ports.ami}")
            (etc / name).write_text(shipped)
        log_mark = len(asterisk.log_lines("WARNING", "ERROR"))
        asterisk.cli("module reload res_ari.so")
        asterisk.cli("manager reload")
        # res_ari refuses a user with an empty password (on a reload it then keeps the previous
        # user, so an admin cannot revoke access by blanking the password: delete the section).
        refused = asterisk.log_lines("WARNING", "ERROR")[log_mark:]
        assert any(f"{ARI_USER}: User missing password" in line for line in refused), refused
        for secret in ("", "secret", "medagent", "password"):
            (reply,) = await ami_exchange(
                asterisk.ports.ami, {"Action": "Login", "Username": ARI_USER, "Secret": secret}
            )
            assert reply.get("Response") != "Success", secret
        # Observed on 23.4.1: "manager reload" keeps a user's previous secret when the new file
        # has none, so commenting the secret out does not revoke it; remove the section instead.
        (kept,) = await ami_exchange(
            asterisk.ports.ami,
            {"Action": "Login", "Username": ARI_USER, "Secret": asterisk.ami_secret},
        )
        assert kept.get("Response") == "Success"
    finally:
        for name, text in saved.items():
            (etc / name).write_text(text)
        asterisk.cli("module reload res_ari.so")
        asterisk.cli("manager reload")
    assert ARI_USER in asterisk.cli("ari show users")


def test_control_ports_listen_on_loopback_only(asterisk: RealAsterisk) -> None:
    """ARI (HTTP) and AMI, the two ports that can move calls, are on 127.0.0.1 only.

    Observed, and not ours to change: Asterisk also holds two UDP sockets on ephemeral ports bound
    to 0.0.0.0 and [::] at idle, and a PJSIP call's RTP binds the wildcard address unless the
    endpoint sets media_address with bind_rtp_to_media_address = yes."""
    shown = asterisk.cli("http show status")
    assert f"127.0.0.1:{asterisk.ports.http}" in shown, shown
    assert "0.0.0.0" not in shown
    if shutil.which("ss") is None:
        return
    pid = (asterisk.astrun / "run" / "asterisk.pid").read_text().strip()
    sockets = subprocess.run(["ss", "-lntpH"], capture_output=True, text=True, check=True).stdout
    listening = sorted(line.split()[3] for line in sockets.splitlines() if f"pid={pid}," in line)
    assert listening == sorted(
        [f"127.0.0.1:{asterisk.ports.http}", f"127.0.0.1:{asterisk.ports.ami}"]
    )
