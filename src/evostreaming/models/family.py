"""The model-family registry: one file per family under ``models/families/`` registers its adapter
and its tiny offline twin with one ``register_family(...)`` line (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evostreaming.models.adapter import FamilyAdapter, StandardAdapter
from evostreaming.utils.registry import Registry


@dataclass(frozen=True)
class Family:
    name: str
    adapter: type[FamilyAdapter]  # turn format, image placeholder, positions, rotary layout
    build_tiny: Callable  # (seed, **overrides) -> TinyModel: a random-weight twin built offline

    @property
    def model_types(self) -> tuple[str, ...]:
        """The ``config.model_type`` values of the checkpoints this family streams."""
        return self.adapter.model_types


FAMILIES: Registry[Family] = Registry(
    "model family", discover="evostreaming.models.families", hint=" (docs/architecture.md: add a model family)"
)


def register_family(adapter: type[FamilyAdapter], build_tiny: Callable) -> Family:
    """Register a family under its adapter's ``family`` name."""
    family = Family(adapter.family, adapter, build_tiny)
    FAMILIES.register(family.name, family)
    return family


def register_standard_family(name: str, model_types: tuple[str, ...], build_tiny: Callable, **traits) -> Family:
    """Register a family that needs no adapter code (``StandardAdapter``): a name, its config model
    types and its tiny twin; ``traits`` overrides class attributes (e.g. ``lora_target_regex``)."""
    adapter = type(f"{name}Adapter", (StandardAdapter,), {"family": name, "model_types": tuple(model_types), **traits})
    return register_family(adapter, build_tiny)


def family_names() -> list[str]:
    return FAMILIES.names()


def supported_model_types() -> set[str]:
    return {t for _, f in FAMILIES.items() for t in f.model_types}


def family_for_model_type(model_type: str) -> Family:
    for _, family in FAMILIES.items():
        if model_type in family.model_types:
            return family
    raise ValueError(
        f"model type {model_type!r} has no streaming adapter; supported families: "
        f"{', '.join(family_names())}. See docs/architecture.md, 'Add a model family'."
    )


def adapter_for(model, processor=None) -> FamilyAdapter:
    """The adapter that matches a loaded model's ``config.model_type``; with ``processor``, its turn
    pieces come from the processor's own chat template (``models.turns``)."""
    adapter = family_for_model_type(model.config.model_type).adapter()
    return adapter.use_template(processor) if processor is not None else adapter
