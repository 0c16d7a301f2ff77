"""The guard registry: Guard subclasses by name, filled by ``register_guards`` plugin hooks."""

from __future__ import annotations

from langdeploy.guards.base import Guard
from langdeploy.plugins import Registry

guard_registry: Registry[type[Guard]] = Registry("guard", "register_guards")
