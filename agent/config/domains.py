"""What each number of each section may be: checked once at load, and named in the error."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Domain:
    """The values a numeric setting may take: ``low``/``high`` inclusive unless ``low_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def holds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high

    def describe(self, integer: bool) -> str:
        kind = "an integer" if integer else "a number"
        low, high = self.low, self.high
        if low is not None and high is not None:
            if self.low_open:
                return f"{kind} > {low:g} and <= {high:g}"
            return f"{kind} from {low:g} to {high:g}"
        if low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {low:g}"
        return f"{kind} <= {high:g}"


PORT = Domain(1, 65535)
POSITIVE = Domain(0, low_open=True)
"""Durations and sizes that must be more than nothing."""
NON_NEGATIVE = Domain(0)
"""Durations where 0 means "none", counts where 0 means "off"."""
AT_LEAST_ONE = Domain(1)
DBFS = Domain(high=0)
"""Levels relative to full scale: nothing is louder than 0 dBFS."""
FRACTION = Domain(0, 1)

DOMAINS: dict[str, Domain] = {
    "ari.request_timeout_s": POSITIVE,
    "ari.reconnect_initial_s": POSITIVE,
    "ari.reconnect_max_s": POSITIVE,
    "ami.port": PORT,
    "ami.reconnect_max_s": POSITIVE,
    "agi.port": PORT,
    "media.port_min": PORT,
    "media.port_max": PORT,
    "media.jitter_delay_ms": NON_NEGATIVE,
    "media.max_stall_catchup_ms": NON_NEGATIVE,
    "vad.aggressiveness": Domain(0, 3),  # webrtcvad's modes
    "vad.min_speech_ms": POSITIVE,
    "vad.end_silence_ms": POSITIVE,
    "vad.short_answer_silence_ms": POSITIVE,
    "vad.max_utterance_s": POSITIVE,
    "vad.preroll_ms": NON_NEGATIVE,
    "vad.barge_in_ms": NON_NEGATIVE,
    "vad.start_gap_ms": NON_NEGATIVE,
    "vad.resume_speech_ms": NON_NEGATIVE,
    "vad.energy_floor_dbfs": DBFS,
    "database.write_timeout_s": POSITIVE,
    "database.command_timeout_s": POSITIVE,
    "database.audit_anchor_interval_s": POSITIVE,
    "stt.cpu_threads": NON_NEGATIVE,  # 0: CTranslate2 picks
    "stt.workers": AT_LEAST_ONE,
    "stt.beam_size": AT_LEAST_ONE,
    "stt.alternatives": AT_LEAST_ONE,
    "stt.no_speech_threshold": FRACTION,  # a probability
    "stt.logprob_threshold": Domain(high=0),  # an average log-probability
    "stt.short_window_pad_s": NON_NEGATIVE,
    "stt.open_window_s": Domain(0, 30, low_open=True),  # Whisper's window is 30 s
    "stt.compression_ratio_threshold": POSITIVE,
    "stt.min_voiced_ms": NON_NEGATIVE,
    "nlu.min_confidence": FRACTION,
    # espeak-ng's speak_lib.h: "espeakRATE: speaking speed in word per minute. Values 80 to 450."
    "tts.rate_wpm": Domain(80, 450),
    "tts.peak_dbfs": DBFS,
    "tts.workers": AT_LEAST_ONE,
    "tts.dynamic_cache_size": NON_NEGATIVE,
    "transfer.ring_timeout_s": AT_LEAST_ONE,
    "transfer.fallback_priority": AT_LEAST_ONE,  # dialplan priorities start at 1
    "calls.max_concurrent": AT_LEAST_ONE,
    "calls.no_input_timeout_s": POSITIVE,
    "calls.health_port": Domain(0, 65535),  # 0: off
}
"""Every number of every section (a test holds this to the sections) and what it may be."""
