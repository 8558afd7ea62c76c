"""Stand-in physiologies: where the four states show in the signals, one module each.

Nobody here knows where the pilots' states show in the real files, so the generator
offers several plausible physiologies (`python -m beam_preprocess.synth --physiology
NAME`), each putting the signatures of B, C and D somewhere else, each documented in
its module with the literature it leans on.  None is written for, or against, a
model.  A new physiology is one module that builds a `Physiology` plus one line here.
"""
from beam_preprocess.synth.physiology import (
    artefacts, autonomic, band_power, band_shares, no_signal, weak_late,
)
from beam_preprocess.synth.physiology.signature import Physiology

PHYSIOLOGIES: dict[str, Physiology] = {
    module.PHYSIOLOGY.name: module.PHYSIOLOGY
    for module in (band_shares, band_power, autonomic, weak_late, artefacts, no_signal)
}
DEFAULT = band_shares.PHYSIOLOGY.name
# Where the states show somewhere: what the quality bench judges models on.
SIGNAL = tuple(name for name in PHYSIOLOGIES if name != no_signal.PHYSIOLOGY.name)
NULL = no_signal.PHYSIOLOGY.name


def get(name: str) -> Physiology:
    """The physiology called `name`; a ValueError naming the choices otherwise."""
    if name not in PHYSIOLOGIES:
        raise ValueError(f"unknown physiology {name!r}; choose one of {', '.join(PHYSIOLOGIES)}")
    return PHYSIOLOGIES[name]


__all__ = ["DEFAULT", "NULL", "PHYSIOLOGIES", "SIGNAL", "Physiology", "get"]
