"""The dialog's table is complete and consistent, and the machine keeps to it.

Every row names the states its handler may leave the dialog in; ``Dialog.handle`` refuses any other
move (``IllegalTransition``, state untouched). That check is always on, so every dialog test
(``test_dialog*.py``, the golden traces, the call-level tests) also proves that no handler moves
anywhere its row does not name. The tests here check the table itself, and that the check bites.
"""

from __future__ import annotations

import re
import typing
from collections import deque
from datetime import UTC, datetime

import pytest

from agent import errors
from agent.core import segmenter
from agent.core.dialog import conversation
from agent.core.dialog.commands import (
    CallerHungUp,
    CallStarted,
    DtmfReceived,
    Event,
    Heard,
    TransferEnded,
)
from agent.core.dialog.machine import (
    FIRST,
    TABLE,
    Dialog,
    DialogSettings,
    IllegalTransition,
    Row,
    State,
    graph,
)
from agent.core.understanding import Entity, RedFlag, Understanding

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
SETTINGS = DialogSettings(
    greeting="Hello.",
    front_desk="PJSIP/desk",
    on_call=("PJSIP/oncall",),
    faq={"hours": "Eight to five."},
)
EVENT_TYPES = set(typing.get_args(Event))


def heard(text: str, intent: str = "message", urgency: str = "routine", **values: object) -> Heard:
    ents = [Entity(label, text, value) for label, value in values.items()]
    flags = [RedFlag("chest_pain", "emergency", "chest pain", text)] if urgency != "routine" else []
    return Heard(NOW, Understanding(text, "en", intent, 0.9, urgency, flags, ents))  # type: ignore[arg-type]


def started() -> Dialog:
    d = Dialog(SETTINGS)
    d.handle(CallStarted(NOW, caller_number="5551234567"))
    return d


def _rows() -> list[tuple[State, object, Row]]:
    return [
        *((s, e, r) for (s, e), r in TABLE.items()),
        *((s, w, r) for (s, w), r in FIRST.items()),
    ]


def test_rows_are_states_and_event_types_with_targets_that_are_states() -> None:
    for (state, event), r in TABLE.items():
        assert isinstance(state, State) and event in EVENT_TYPES, (state, event)
        assert r.to and all(isinstance(t, State) for t in r.to), (state, event)
        assert callable(r.handler)
    for (state, words), r in FIRST.items():
        assert words in (
            "emergency",
            "urgent",
            "same day",
            "command",
            "aside",
            "distress",
            "late correction",
            "new request",
        )
        assert r.to and all(isinstance(t, State) for t in r.to), (state, words)
        # What the caller says outranks a row only where what the caller says has a row.
        assert (state, Heard) in TABLE, state


def test_every_state_is_reachable_from_the_start() -> None:
    seen, todo = {State.NEW}, deque([State.NEW])
    while todo:
        here = todo.popleft()
        for state, _, r in _rows():
            if state is here:
                for to in r.to - seen:
                    seen.add(to)
                    todo.append(to)
    assert seen == set(State)


def test_every_state_has_a_hangup_row_and_only_a_hangup_leaves_no_call_behind() -> None:
    for state in State:
        assert TABLE[(state, CallerHungUp)].to == {State.ENDED}, state
    # The final state: nothing but the (late) hang-up, and nowhere to go from it.
    assert [e for s, e in TABLE if s is State.ENDED] == [CallerHungUp]
    # Every other state has a way on besides the hang-up.
    for state in set(State) - {State.ENDED}:
        assert any(s is state and e is not CallerHungUp for s, e in TABLE), state


def test_red_flags_outrank_the_row_where_they_always_have() -> None:
    listening = {s for s, e in TABLE if e is Heard}
    emergency = {s for s, w in FIRST if w == "emergency"}
    urgent = {s for s, w in FIRST if w == "urgent"}
    # Every listening state but the emergency offer itself answers an emergency first.
    assert emergency == listening - {State.EMERGENCY_OFFER}
    # An urgent flag is not taken out of a message being left.
    assert urgent == emergency - {State.MESSAGE, State.URGENT_MESSAGE}
    assert all(FIRST[(s, "emergency")].to == {State.EMERGENCY_OFFER} for s in emergency)


@pytest.mark.parametrize(
    ("walk", "state"),
    [
        ([], State.REQUEST),
        ([heard("please take a message")], State.MESSAGE),
        ([heard("i need a refill", "refill")], State.ASK),
        ([heard("what are your hours", "office_info")], State.ANYTHING_ELSE),
    ],
)
def test_an_emergency_is_answered_first_in_each_state(walk: list[Heard], state: State) -> None:
    d = started()
    for ev in walk:
        d.handle(ev)
    assert d.state is state
    out = d.handle(heard("crushing chest pain", "symptoms", "emergency"))
    assert d.state is State.EMERGENCY_OFFER and "9 1 1" in out[0].text  # type: ignore[union-attr]


def test_an_event_without_a_row_raises_and_keeps_the_state() -> None:
    d = started()
    with pytest.raises(IllegalTransition, match="no transition from request on TransferEnded"):
        d.handle(TransferEnded(NOW, "answered"))
    assert d.state is State.REQUEST


def test_a_move_the_row_does_not_name_raises_and_keeps_the_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = started()
    # As if the table forgot that a request can start a workflow (REQUEST -> ASK).
    narrow = Row(TABLE[(State.REQUEST, Heard)].handler, frozenset({State.REQUEST, State.ENDED}))
    monkeypatch.setitem(TABLE, (State.REQUEST, Heard), narrow)
    with pytest.raises(IllegalTransition, match="a move to ask"):
        d.handle(heard("i need a refill", "refill"))
    assert d.state is State.REQUEST


def test_staying_put_must_be_a_named_target_too(monkeypatch: pytest.MonkeyPatch) -> None:
    d = started()
    stray_key = Row(conversation.pressed, frozenset({State.TRANSFERRING}))
    monkeypatch.setitem(TABLE, (State.REQUEST, DtmfReceived), stray_key)
    with pytest.raises(IllegalTransition, match="left unmoved"):
        d.handle(DtmfReceived(NOW, "#"))
    assert d.state is State.REQUEST


def test_nothing_moves_the_state_outside_a_row() -> None:
    d = started()
    with pytest.raises(IllegalTransition):
        d.move(State.ENDED)
    assert d.state is State.REQUEST


def test_one_illegal_transition_for_every_state_machine() -> None:
    assert IllegalTransition is errors.IllegalTransition
    assert segmenter.IllegalTransition is errors.IllegalTransition
    assert issubclass(IllegalTransition, errors.MedAgentError)
    assert IllegalTransition.code == "illegal_transition"


def test_the_graph_draws_every_row() -> None:
    dot = graph()
    assert dot.startswith("digraph dialog {") and dot.rstrip().endswith("}")
    edges: dict[tuple[str, str], str] = {}
    for src, dst, label in re.findall(r'^  (\w+) -> (\w+) \[label="([^"]*)"', dot, re.M):
        edges[(src, dst)] = edges.get((src, dst), "") + "|" + label
    for (state, event), r in TABLE.items():
        for to in r.to:
            assert event.__name__ in edges[(state.value, to.value)], (state, event, to)
    for (state, words), r in FIRST.items():
        for to in r.to:
            assert f"Heard: {words}" in edges[(state.value, to.value)], (state, words, to)
    for state in State:
        assert re.search(rf"^  {state.value};$", dot, re.M), state
