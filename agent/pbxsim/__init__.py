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

``hangup_by`` is ``caller``/``phone`` (BYE from the simulated handset), ``agent`` (ARI DELETE or
redirect), ``dialplan`` (Hangup, end of extension, a Dial partner leaving) or ``asterisk``
(``stop()``). ``caller.path`` lists the dialplan applications run and outcomes such as
``Stasis(medical-agent) not registered``, ``continue(medagent-fallback,s,1)``,
``answered(PJSIP/frontdesk)``, ``BUSY``, ``NOANSWER``, ``redirect(PJSIP/x)``.

Known differences from Asterisk 23 (deliberate, or not recorded):

* ``ChannelVarset`` events are not emitted (the README allows either; clients ignore them).
* externalMedia speaks ``ulaw`` over RTP/UDP only; other known formats get 501.
* Not served: snoop, record, mute, hold, silence, mailboxes, recordings, sounds, user events.
* ``/redirect`` ends the caller's channel (SIP 302) without simulating the new call.
* ``ApplicationReplaced`` follows the events.json description (not in the recordings).
* After ``stop()`` the websocket dies as soon as the last events are written (Asterisk: ~1.1 s).
* A hang-up during a ringing originate reports ``Dial(NOANSWER)`` and ``ChannelDestroyed(16)``
  after ringing events; the recording of that case never rang.
"""

from agent.pbxsim.dialplan import Dialplan, default_dialplan
from agent.pbxsim.engine import PbxSim, PbxSimConfig
from agent.pbxsim.handsets import PhoneConfig, SimLeg, SimPhone, Voicemail

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
