"""`weak-late`: EEG and autonomic signs, weak, 1-4 s late, and absent in some pilots.

The signatures of `band-power` (EEG) and of `autonomic` (heart, breathing, skin) at
half their strength, and each pilot responds in their own way: a response gain
drawn between 0.3 and 1 (0 for one pilot in five, who shows no state at all) and a
latency of 1-4 s, the same in all of the pilot's sessions.  A model must then learn
from the pilots who respond, not be misled by those who do not, and expect a state
to show only seconds after its label begins.

Literature: individual response specificity, where pilots respond to the same
demand in different systems and some hardly at all (Lacey & Lacey 1958, Am. J.
Psychol. 71:50; Fairclough 2009, Interact. Comput. 21:133); the heart-rate and
electrodermal responses build over seconds (SCR latency 1-3 s: Dawson, Schell &
Filion 2007, Handbook of Psychophysiology); workload indices differ strongly
between pilots in flight (Wilson 2002, Int. J. Aviat. Psychol. 12:3).
"""
import dataclasses

from beam_preprocess.synth.physiology import autonomic, band_power

HALF = 0.5
_EEG = band_power.PHYSIOLOGY.for_pilot(HALF)
_AUTONOMIC = autonomic.PHYSIOLOGY.for_pilot(HALF)

PHYSIOLOGY = dataclasses.replace(
    _AUTONOMIC,
    name="weak-late",
    summary="band-power's EEG and autonomic's signs at half strength, 1-4 s late, a gain "
            "per pilot (none for one in five)",
    eeg_band_shares=_EEG.eeg_band_shares,
    eeg_power=_EEG.eeg_power,
    response_gain=(0.3, 1.0),
    non_responders=0.2,
    latency_s=(1.0, 4.0),
)
