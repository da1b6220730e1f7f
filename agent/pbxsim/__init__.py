"""``pbxsim``: a loopback stand-in for the parts of Asterisk 23 the agent uses.

ARI REST and events on aiohttp (``ari.py``), externalMedia RTP over real UDP, bridges that
forward (two parties) or mix (three or more), ``sound:`` playbacks, simulated callers and desk
phones, and a small dialplan model. Behaviour follows the recordings in
``shared/asterisk-reference``.

    sim = PbxSim(PbxSimConfig(password="secret"))
    base_url = await sim.start()            # http://127.0.0.1:PORT/ari
    caller = await sim.place_call(exten="100", caller_number="5551234")
    await caller.play(ulaw_bytes); await caller.send_dtmf("1"); await caller.hangup()
    sim.phone("clinician100").behaviour = "busy"
    await sim.drop_websockets(close_frame=False); await sim.stop(); await sim.start()
"""

from agent.pbxsim.dialplan import Dialplan, default_dialplan
from agent.pbxsim.engine import PbxSim, PbxSimConfig, PhoneConfig, SimLeg, SimPhone, Voicemail

SimCaller = SimLeg

__all__ = [
    "Dialplan",
    "PbxSim",
    "PbxSimConfig",
    "PhoneConfig",
    "SimCaller",
    "SimLeg",
    "SimPhone",
    "Voicemail",
    "default_dialplan",
]
