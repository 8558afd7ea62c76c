"""`artefacts`: the states show in what EEG analysis usually removes: blinks, muscle, movement.

The core EEG, heart and breathing are the same in every state; what changes is:
- blinks on the frontal channels (x the resting 0.25/s): fewer under channelized
  attention (C x0.5; blinks are inhibited while the eyes hold a visual task: Stern,
  Boyer & Schroeder 1994, Hum. Factors 36:285; Veltman & Gaillard 1998, Ergonomics
  41:656), more when attention is diverted (D x1.4; more blinks with off-task and
  divided attention: Smilek, Carriere & Cheyne 2010, Psychol. Sci. 21:786) and in a
  startle (B x1.8, the startle eye-blink reflex: Blumenthal et al. 2005,
  Psychophysiology 42:1);
- muscle (EMG) activity, broadband and strongest above 20 Hz, over temporal and
  frontal sites (jaw and forehead tension; sd in units of the core EEG: A 0.3,
  C 0.45, D 0.6, B 1.2; Goncharova et al. 2003, Clin. Neurophysiol. 114:1580);
- movement artefacts, slow large deflections on every channel (per minute: A 1,
  C 0.5, D 4 as the head turns to another display, B 6 as the pilot flinches).
"""
from beam_preprocess.synth.physiology.signature import Physiology, channel_weights, per_state

PHYSIOLOGY = Physiology(
    name="artefacts",
    summary="state-linked blinks, muscle (EMG) and movement artefacts; the core signals "
            "do not change",
    blink_rate=per_state({"B": 1.8, "C": 0.5, "D": 1.4}, 1.0),
    emg_sd=per_state({"A": 0.3, "B": 1.2, "C": 0.45, "D": 0.6}, 0.0),
    emg_channels=channel_weights({"temporal": 1.0, "frontal": 0.6, "central": 0.2}),
    movements_per_minute=per_state({"A": 1.0, "B": 6.0, "C": 0.5, "D": 4.0}, 0.0),
)
