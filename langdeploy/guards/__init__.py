"""Guardrails: small pure guard objects (text in, verdict out) and the pipelines that fold them
around a chain. Offline and CPU-only; nothing here loads a model or touches the network."""

from langdeploy.guards.base import (
    Action,
    Finding,
    Guard,
    GuardContext,
    GuardOptions,
    GuardrailViolation,
    GuardResult,
    Redactions,
    Stage,
    Violation,
)
from langdeploy.guards.guarded import GuardedRunnable, guard_documents, guarded
from langdeploy.guards.pipeline import GuardEvent, GuardPipeline, StreamRedactor
from langdeploy.guards.registry import guard_registry

__all__ = [
    "Action",
    "Finding",
    "Guard",
    "GuardContext",
    "GuardEvent",
    "GuardOptions",
    "GuardPipeline",
    "GuardResult",
    "GuardedRunnable",
    "GuardrailViolation",
    "Redactions",
    "Stage",
    "StreamRedactor",
    "Violation",
    "guard_documents",
    "guard_registry",
    "guarded",
]
