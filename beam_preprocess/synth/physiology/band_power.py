"""`band-power`: EEG band power of some regions rises or falls against the pilot's own level.

The states change the *absolute* power of a band over a region, not compensated by
the other bands, so a window's variance (and the sd of its first difference) moves
with the state, measured against the pilot's own resting level.  Autonomic signs
are weak (heart rate B +5%, C +2%, D +3%; no breathing change; a small phasic skin
response).

- C, channelized attention (one demanding task held in focus): frontal theta x1.6
  (frontal-midline theta grows with sustained focused workload: Gevins & Smith 2003,
  Theor. Issues Ergon. Sci. 4:113; Onton, Delorme & Makeig 2005, NeuroImage 27:341),
  parietal and occipital alpha x0.6 (alpha desynchronises with engaged attention:
  Klimesch 1999, Brain Res. Rev. 29:169), central beta x1.3.
- D, diverted attention (a second task competing for attention): frontal theta x1.35
  and central theta x1.2, parietal alpha x0.75 (divided attention and task switching
  raise workload, less than one task held in focus: Borghini et al. 2014, Neurosci.
  Biobehav. Rev. 44:58), temporal beta x1.25 (verbal and arithmetic load, lateral).
- B, startle/surprise: alpha blocked over every region (x0.5; the orienting response
  attenuates alpha: Barry et al. 2007, Int. J. Psychophysiol. 66:1), frontal and
  central beta x1.5 and broadband x1.3 (arousal).
"""
from beam_preprocess.synth.physiology.signature import Physiology, per_state, power_changes

ALL_REGIONS = ("frontal", "central", "temporal", "parietal", "occipital")

PHYSIOLOGY = Physiology(
    name="band-power",
    summary="EEG band power of regions up or down against the pilot's own level; weak "
            "autonomic signs",
    eeg_power=power_changes({
        ("C", "theta", "frontal"): 1.6, ("C", "alpha", "parietal"): 0.6,
        ("C", "alpha", "occipital"): 0.6, ("C", "beta", "central"): 1.3,
        ("D", "theta", "frontal"): 1.35, ("D", "theta", "central"): 1.2,
        ("D", "alpha", "parietal"): 0.75, ("D", "beta", "temporal"): 1.25,
        **{("B", "alpha", region): 0.5 for region in ALL_REGIONS},
        ("B", "beta", "frontal"): 1.5, ("B", "beta", "central"): 1.5,
        **{("B", "broadband", region): 1.3 for region in ALL_REGIONS},
    }),
    heart_rate=per_state({"B": 1.05, "C": 1.02, "D": 1.03}, 1.0),
    gsr_arousal=per_state({"B": 1.0, "C": 0.3, "D": 0.5}, 0.0),
    gsr_response_gain=0.1,
)
