"""``Understander``: one caller utterance in, one ``Understanding`` out.

    text ─┬─ lang.detect ───────────────┐
          ├─ IntentClassifier.predict ──┤
          ├─ extract_entities ──────────┼─► Understanding(intent, urgency, red_flags, entities)
          └─ Triage.assess ─────────────┘

Urgency is decided by the red flags, never by the classifier alone: a flag overrides the intent's
default (emergency > urgent > routine), and ``symptoms`` without a flag is routine. The classifier's
confidence is reported as is; the dialog compares it with ``NluConfig.min_confidence``.

Synchronous and pure apart from the model: the call's time comes in as ``now``. The async side runs
it through a bounded executor like the other engines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from agent.config import Config, Provider
from agent.core.understanding import INTENTS, Entity, RedFlag, Understanding, Urgency
from agent.engines.nlu import lang as language
from agent.engines.nlu.classifier import IntentClassifier, Prediction
from agent.engines.nlu.protocol_files import current_book
from agent.engines.nlu.protocol_reading import ProtocolReader, ProtocolReading
from agent.engines.nlu.topics import EmbeddingTopics
from agent.log import get_logger

# Every intent is routine unless triage finds a red flag: a billing question that mentions chest
# pain is an emergency because of the words, not because of the intent.
DEFAULT_URGENCY: dict[str, Urgency] = dict.fromkeys(INTENTS, "routine")
_RANK: dict[str, int] = {"routine": 0, "urgent": 1, "emergency": 2}
log = get_logger(__name__)

EntityExtractor = Callable[..., list[Entity]]
"""``extract_entities(text, *, now, tz, providers, lang, pharmacies) -> list[Entity]``."""


class IntentModel(Protocol):
    def predict(self, text: str) -> Prediction: ...


class TriageRules(Protocol):
    def assess(self, text: str, lang: str = "en") -> list[RedFlag]: ...


class Understander:
    def __init__(
        self,
        classifier: IntentModel,
        triage: TriageRules,
        extract_entities: EntityExtractor,
        *,
        providers: Sequence[Provider] = (),
        pharmacies: Sequence[str] = (),
        timezone: str = "America/New_York",
        protocols: ProtocolReader | None = None,
    ) -> None:
        self._protocols = protocols
        self._classifier = classifier
        self._triage = triage
        self._extract = extract_entities
        self._providers = list(providers)
        self._pharmacies = tuple(pharmacies)
        self._tz = timezone

    @classmethod
    def from_config(cls, cfg: Config) -> Understander:
        """The trained model from ``cfg.nlu.model_dir`` (``EngineError`` with the fix when it is
        missing), the base triage pack plus ``practice.specialty_packs``, and the entity rules."""
        from agent.core.triage import Triage
        from agent.engines.nlu import train
        from agent.engines.nlu.entities import extract_entities

        classifier = IntentClassifier.load(cfg.nlu.model_dir)
        if not train.is_current(cfg.nlu.model_dir):
            # Still usable, but not what the data in the repository would train: say so once.
            log.warning(
                "nlu_model_stale",
                model_dir=cfg.nlu.model_dir,
                fix="medagent nlu train --if-changed",
            )
        triage = Triage.load(list(cfg.practice.specialty_packs))  # the base pack is always in
        packs = tuple(cfg.practice.specialty_packs)
        current_book(packs)  # read and compiled now, in the loading thread
        topics = EmbeddingTopics.load(cfg.nlu.model_dir)
        return cls(
            classifier,
            triage,
            extract_entities,
            providers=cfg.practice.providers,
            pharmacies=cfg.practice.pharmacies,
            timezone=cfg.practice.timezone,
            protocols=ProtocolReader(lambda: current_book(packs), topics),
        )

    def protocol_reading(self, text: str, *, lang: str = "en") -> ProtocolReading | None:
        """How the protocols read ``text`` (``medagent triage explain``); ``None`` without them."""
        if self._protocols is None:
            return None
        return self._protocols.read(text, lang=lang)

    def understand(
        self,
        text: str,
        *,
        now: datetime,
        transcript: str | None = None,
        alternatives: Sequence[str] = (),
    ) -> Understanding:
        """``alternatives``: the recogniser's other hypotheses of the same words. Only triage
        reads them: a red flag heard in any of them counts (a missed emergency costs far more than
        a needless transfer), while the intent and entities come from the best hypothesis."""
        lang = language.detect(text)
        prediction = self._classifier.predict(text)
        flags = self._triage.assess(text, lang)
        seen = {f.rule_id for f in flags}
        for alt in alternatives:
            for flag in self._triage.assess(alt, lang):
                if flag.rule_id not in seen:
                    seen.add(flag.rule_id)
                    flags.append(flag)
        protocol = None
        if self._protocols is not None:
            reading = self._protocols.read(text, lang=lang, alternatives=alternatives)
            protocol = reading.protocol
            for flag in reading.flags:
                if flag.rule_id not in seen:
                    seen.add(flag.rule_id)
                    flags.append(flag)
            flags.sort(key=lambda f: 0 if f.urgency == "emergency" else 1)
        urgency = combine_urgency(DEFAULT_URGENCY[prediction.intent], flags)
        entities = self._extract(
            text,
            now=now,
            tz=self._tz,
            providers=self._providers,
            lang=lang,
            pharmacies=self._pharmacies,
        )
        if not any(e.label == "medication" for e in entities):
            # A drug name is where a small recogniser errs most ("oxycodone" heard "oxicatum"):
            # take it from the first other hypothesis that has one. Its offsets are into that
            # hypothesis, not ``text``, so it carries none.
            for alt in alternatives:
                found = self._extract(
                    alt,
                    now=now,
                    tz=self._tz,
                    providers=self._providers,
                    lang=lang,
                    pharmacies=self._pharmacies,
                )
                med = next((e for e in found if e.label == "medication"), None)
                if med is not None:
                    entities = [*entities, dataclasses.replace(med, start=0, end=0)]
                    break
        return Understanding(
            text=text,
            lang=lang,
            intent=prediction.intent,
            confidence=prediction.confidence,
            urgency=urgency,
            red_flags=flags,
            entities=entities,
            transcript=transcript,
            alternatives=tuple(alternatives),
            protocol=protocol,
        )


def combine_urgency(default: Urgency, flags: Sequence[RedFlag]) -> Urgency:
    """The most urgent of the intent's default and every red flag."""
    urgency = default
    for flag in flags:
        if _RANK[flag.urgency] > _RANK[urgency]:
            urgency = flag.urgency
    return urgency
