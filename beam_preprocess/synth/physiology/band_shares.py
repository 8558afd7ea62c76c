"""`band-shares` (the default): the states move EEG band shares and heart and breathing rates.

The stand-in's first physiology, and the default.  The state sets the *variance
shares* of the core EEG's theta (~6 Hz), alpha (~10 Hz), beta (~20 Hz) and
broadband parts: A alpha-dominated, C more beta, D more theta, B a broadband burst.
The shares sum to 1 in every state, so the per-sample variance (and, the parts
being near-Gaussian, the single-sample distribution) does not change with the
state; only spectra over a window do.  Heart rate rises (B +15%, D +7%, C +4%),
breathing quickens (B +25%, D +12%, C +8%), and a phasic skin response follows
changes of arousal (A 0, C 0.3, D 0.5, B 1), small against the pilot's slow drift.

Literature: alpha desynchronisation and beta increase with engaged, externally
directed attention, theta increase with divided attention and workload (Klimesch
1999, Brain Res. Rev. 29:169; Gevins & Smith 2003, Theor. Issues Ergon. Sci. 4:113);
heart rate and breathing rate rise with workload and arousal (Veltman & Gaillard
1998, Ergonomics 41:656; Wilson 2002, Int. J. Aviat. Psychol. 12:3); the phasic
electrodermal response to arousing events (Boucsein 2012, Electrodermal Activity).
Here the total EEG power is held fixed, which isolates the *relative* spectrum: a
model that reads only window variances or absolute band power sees nothing of it.
"""
import numpy as np

from beam_preprocess.synth.physiology.signature import Physiology, per_state

PHYSIOLOGY = Physiology(
    name="band-shares",
    summary="EEG band shares at a fixed total power, heart and breathing rates, a phasic "
            "skin response (the default)",
    eeg_band_shares=np.array([
        (0.18, 0.40, 0.17, 0.25),  # A baseline: alpha
        (0.20, 0.25, 0.20, 0.35),  # B startle: broadband burst
        (0.14, 0.30, 0.31, 0.25),  # C channelized attention: beta
        (0.30, 0.28, 0.17, 0.25),  # D diverted attention: theta
    ]),
    heart_rate=per_state({"B": 1.15, "C": 1.04, "D": 1.07}, 1.0),
    breath_rate=per_state({"B": 1.25, "C": 1.08, "D": 1.12}, 1.0),
    gsr_arousal=per_state({"B": 1.0, "C": 0.3, "D": 0.5}, 0.0),
    gsr_response_gain=0.25,
)
