"""The live parameters' ranges checked against the model they act on.

The registry's own ranges are the model's shape in general (layers 1..3, any unit number); a
performance plays one model, whose layers have ``hidden`` units and whose ablation sets are the
files installed beside it. ``fit_to_model`` registers checks for those on the parameter specs
once the model is known, before any controller or patch sets a value, so ``Parameters.set``
and ``patch check`` refuse ``ablation.units 600`` on a 512-unit model (one line, the old value
kept) instead of the model thread meeting it as an IndexError mid-performance.

The checks are small picklable objects (a patch is checked in a child process, see
``controllers.watcher``) and never touch the disk: set names are listed once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from instrument.errors import excerpt
from instrument.live.params import ParamError, Parameters, ParamSpec, voice_of
from instrument.live.steering import installed_sets, model_set_dir


@dataclass(frozen=True)
class UnitsOfModel:
    """``ablation.units``: unit numbers that exist on this model's layers (0..hidden-1), each once."""

    hidden: int
    base: Callable[[Any], Any] | None = None  # the registry's own check, run first

    def __call__(self, value: Any) -> tuple[int, ...]:
        units = self.base(value) if self.base is not None else value
        beyond = [u for u in units if not 0 <= u < self.hidden]
        if beyond:
            raise ParamError(f"ablation.units: this model's layers have units 0..{self.hidden - 1}, not {excerpt(beyond[0])}")
        return tuple(sorted(set(units)))


@dataclass(frozen=True)
class SetOfModel:
    """``ablation.set``: 'random' or a set installed beside this model."""

    names: tuple[str, ...]
    folder: str

    def __call__(self, value: Any) -> str:
        if value not in self.names:
            reason = (f"is not installed for this model; choose from {', '.join(self.names)} "
                      f"('run.py analyze spectra --install' adds sets to {self.folder})")
            raise ParamError(f"ablation.set {excerpt(value, 60, quote=True)} {reason}", f"ablation.set {reason}")
        return value


def fitted_specs(specs: Iterable[ParamSpec], hidden: int, layers: int, model_path: str | None) -> dict[str, ParamSpec]:
    """``specs`` with this model's checks added: unit numbers, the layer count, the set names."""
    sets = ("random", *installed_sets(model_path))
    folder = str(model_set_dir(model_path)) if model_path else "<model>.ablation/"
    out = {}
    for spec in specs:
        base = voice_of(spec.name)[1]  # every voice's ablation alike (voice.2.ablation.units)
        if base == "ablation.units" and not isinstance(spec.validate, UnitsOfModel):
            spec = replace(spec, validate=UnitsOfModel(hidden, spec.validate))
        elif base == "ablation.set":
            spec = replace(spec, validate=SetOfModel(sets, folder))
        elif base == "ablation.layer":
            spec = replace(spec, maximum=layers)
        out[spec.name] = spec
    return out


def fit_to_model(params: Parameters, hidden: int, layers: int, model_path: str | None) -> None:
    """Register the model's checks on ``params`` (call before controllers and patches set values)."""
    params.specs.update(fitted_specs(params.specs.values(), hidden, layers, model_path))
    for name in params.specs:
        if voice_of(name)[1] == "ablation.layer" and params.target(name) > layers:  # the registry's default is the third of three
            params.set(name, layers, source="model", smoothing_ms=0)
