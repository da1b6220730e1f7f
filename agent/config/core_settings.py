"""The core's own settings objects, built from their sections: the core never imports
``agent.config``; the runtime builds these and hands them down."""

from __future__ import annotations

from agent.config.sections import PracticeConfig, VadConfig
from agent.core.office import OfficeHours
from agent.core.segmenter import SegmenterSettings


def segmenter_settings(vad: VadConfig) -> SegmenterSettings:
    """The utterance segmenter's thresholds (``agent.core.segmenter``) from ``[vad]``."""
    return SegmenterSettings(
        min_speech_ms=vad.min_speech_ms,
        end_silence_ms=vad.end_silence_ms,
        short_answer_silence_ms=vad.short_answer_silence_ms,
        max_utterance_ms=vad.max_utterance_s * 1000,
        preroll_ms=vad.preroll_ms,
        barge_in_ms=vad.barge_in_ms,
        start_gap_ms=vad.start_gap_ms,
        resume_speech_ms=vad.resume_speech_ms,
    )


def office_hours(practice: PracticeConfig) -> OfficeHours:
    """When the office is open (``agent.core.office``), from ``[practice]``."""
    return OfficeHours(
        timezone=practice.timezone,
        weekly=dict(practice.office_hours),
        holidays=frozenset(practice.holidays),
    )
