"""The registry of detector classes, by name: every detector module registers itself here."""
from __future__ import annotations

from .base import Detector

REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: add ``cls`` to the registry under ``cls.name``."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"detector name {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls
    return cls


def make(name: str, **params) -> Detector:
    """Build the registered detector ``name`` with ``params``; ValueError for an unknown name."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; choose one of {sorted(REGISTRY)}") from None
    return cls(**params)
