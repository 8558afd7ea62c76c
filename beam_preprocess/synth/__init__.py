"""A faithful stand-in for the Kaggle "Reducing Commercial Aviation Fatalities" CSVs.

The real files cannot be downloaded here, so this package writes files with the
same schema, row counts (at --scale 1), label layout and messiness (text-sorted
times, interleaved seats, holes, drop-outs, spikes), and with states that are
learnable from time but not from single samples.  Modules: `layout` (sessions,
times, label schedules, scale semantics), `signals` (channel models and the
documented state signatures), `writer` (CSV text in the real files' order),
`files` (writes the files one session at a time), `cli` (the command line).
"""
from beam_preprocess.synth.cli import main
from beam_preprocess.synth.files import generate

__all__ = ["main", "generate"]
