"""Fault injection for the emulator: the failures a real Runway (or the way to it) produces.

Faults act like a misbehaving proxy in front of the emulator: they are decided before a request
reaches its handler, so an answered fault (429, 5xx) leaves no trace in the emulator's state.
Two kinds are the exception on purpose, because clients must survive them too: `bad_json_rate`
and `slow_rate` let the request take effect (a task is created and billed) and then garble or
delay the reply, and `drop_after_rate` closes the connection after the work was done. Those are
the "did my POST go through?" cases that a generation client must never resubmit blindly.

Randomness comes from one seeded `random.Random`, so a test with the same seed and the same
request sequence sees the same faults.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from dataclasses import dataclass, field
from typing import Any

SCOPES = ("all", "api", "tasks", "generate", "storage", "outputs")
ERROR_STATUSES = (500, 502, 503, 504)


@dataclass(frozen=True)
class FaultConfig:
    """Which faults to inject and how often; every rate is a probability in [0, 1]."""

    error_rate: float = 0.0
    error_status: int = 503
    rate_limit_every: int = 0
    rate_limit_burst: int = 0
    retry_after: float = 1.0
    drop_rate: float = 0.0
    drop_after_rate: float = 0.0
    delay: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    bad_json_rate: float = 0.0
    expire_slots: bool = False
    expire_next_slots: int = 0
    no_credits: bool = False
    scope: tuple[str, ...] = ("all",)
    seed: int = 0

    def __post_init__(self) -> None:
        scope: object = self.scope
        if isinstance(scope, str):
            object.__setattr__(self, "scope", (scope,))
        elif isinstance(scope, list):
            object.__setattr__(self, "scope", tuple(scope))
        problems = validate(self)
        if problems:
            raise ValueError("invalid faults: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, data: dict[str, Any] | None) -> FaultConfig:
        """Build from a plain dict (JSON, CLI); unknown keys are an error, not silently ignored."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown fault keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, as served by GET /_emulator/faults and stats()."""
        out = dataclasses.asdict(self)
        out["scope"] = list(self.scope)
        return out


def validate(cfg: FaultConfig) -> list[str]:
    """Every problem of a fault configuration, so one bad POST explains all its mistakes."""
    problems: list[str] = []
    for name in ("error_rate", "drop_rate", "drop_after_rate", "slow_rate", "bad_json_rate"):
        value = getattr(cfg, name)
        if not _is_number(value) or not 0.0 <= value <= 1.0:
            problems.append(f"{name}: expected a number between 0 and 1, got {value!r}")
    for name in ("retry_after", "delay", "slow_seconds"):
        value = getattr(cfg, name)
        if not _is_number(value) or value < 0:
            problems.append(f"{name}: expected a number >= 0, got {value!r}")
    for name in ("rate_limit_every", "rate_limit_burst", "expire_next_slots", "seed"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(f"{name}: expected an integer >= 0, got {value!r}")
    for name in ("expire_slots", "no_credits"):
        if not isinstance(getattr(cfg, name), bool):
            problems.append(f"{name}: expected true or false, got {getattr(cfg, name)!r}")
    if cfg.error_status not in ERROR_STATUSES:
        problems.append(f"error_status: expected one of {ERROR_STATUSES}, got {cfg.error_status!r}")
    bad_scope = [s for s in cfg.scope if s not in SCOPES]
    if bad_scope or not cfg.scope:
        problems.append(f"scope: expected some of {SCOPES}, got {list(cfg.scope)!r}")
    return problems


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Decision:
    """What the injector wants done with one request; `kind` None means "serve normally"."""

    kind: str | None = None
    status: int = 0
    retry_after: float | None = None
    delay: float = 0.0
    after: str | None = None  # "slow", "bad_json" or "drop": applied once the request took effect
    slow_seconds: float = 0.0


@dataclass
class FaultInjector:
    """Thread-safe fault decisions; `counted` says how many of each kind were injected."""

    config: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.config.seed)
        self._in_scope = 0
        self._burst_left = self.config.rate_limit_burst
        self._expire_left = self.config.expire_next_slots
        self.counted: dict[str, int] = {}

    def configure(self, cfg: FaultConfig) -> None:
        """Replace the faults live; the RNG is reseeded so a new configuration replays exactly."""
        with self._lock:
            self.config = cfg
            self._rng = random.Random(cfg.seed)
            self._in_scope = 0
            self._burst_left = cfg.rate_limit_burst
            self._expire_left = cfg.expire_next_slots

    def update(self, **changes: Any) -> FaultConfig:
        """Change some keys and keep the others (what set_faults and POST /_emulator/faults do).

        One-shot counts (rate_limit_burst, expire_next_slots) carry what is left of them unless
        given again, so changing `delay` does not re-arm a burst that was already spent."""
        merged = self.current()
        merged.update(changes)
        cfg = FaultConfig.from_mapping(merged)
        self.configure(cfg)
        return cfg

    def current(self) -> dict[str, Any]:
        """The configuration as JSON, with one-shot counts showing what is left of them."""
        with self._lock:
            out = self.config.as_dict()
            out["rate_limit_burst"] = self._burst_left
            out["expire_next_slots"] = self._expire_left
            return out

    def reset(self) -> None:
        """No faults at all, counters cleared."""
        self.configure(FaultConfig())
        with self._lock:
            self.counted = {}

    def count(self, kind: str) -> None:
        """Record one injected fault (also used by handlers for faults they apply themselves)."""
        with self._lock:
            self.counted[kind] = self.counted.get(kind, 0) + 1

    def applies(self, categories: tuple[str, ...]) -> bool:
        """True if the configured scope covers a request of these categories."""
        scope = self.config.scope
        return "all" in scope or any(c in scope for c in categories)

    def decide(self, categories: tuple[str, ...], *, json_reply: bool) -> Decision:
        """Pick the fault (if any) for one request; `categories` e.g. ("api", "tasks")."""
        if not self.applies(categories):
            return Decision()
        with self._lock:
            cfg = self.config
            rng = self._rng
            self._in_scope += 1
            decision = Decision(delay=cfg.delay)
            if self._burst_left > 0:
                self._burst_left -= 1
                decision.kind, decision.status = "rate_limit", 429
            elif cfg.rate_limit_every and self._in_scope % cfg.rate_limit_every == 0:
                decision.kind, decision.status = "rate_limit", 429
            elif cfg.error_rate and rng.random() < cfg.error_rate:
                decision.kind, decision.status = "error", cfg.error_status
            elif cfg.drop_rate and rng.random() < cfg.drop_rate:
                decision.kind = "drop"
            if decision.kind == "rate_limit":
                decision.retry_after = cfg.retry_after
            if decision.kind is None:
                if cfg.drop_after_rate and rng.random() < cfg.drop_after_rate:
                    decision.after = "drop_after"
                elif cfg.slow_rate and rng.random() < cfg.slow_rate:
                    decision.after, decision.slow_seconds = "slow", cfg.slow_seconds
                elif json_reply and cfg.bad_json_rate and rng.random() < cfg.bad_json_rate:
                    decision.after = "bad_json"
            for kind in (decision.kind, decision.after):
                if kind:
                    self.counted[kind] = self.counted.get(kind, 0) + 1
            if decision.delay:
                self.counted["delay"] = self.counted.get("delay", 0) + 1
            return decision

    def slot_born_expired(self) -> bool:
        """True if the slot being created must be born expired (expire_slots, expire_next_slots)."""
        with self._lock:
            if not self.applies(("storage", "api")):
                return False
            expired = self.config.expire_slots
            if not expired and self._expire_left > 0:
                self._expire_left -= 1
                expired = True
            if expired:
                self.counted["expired_slot"] = self.counted.get("expired_slot", 0) + 1
            return expired

    def no_credits(self) -> bool:
        """True if generation must be refused for lack of credits."""
        with self._lock:
            if self.config.no_credits:
                self.counted["no_credits"] = self.counted.get("no_credits", 0) + 1
                return True
            return False

    def snapshot(self) -> dict[str, int]:
        """A copy of the per-kind counts."""
        with self._lock:
            return dict(self.counted)
