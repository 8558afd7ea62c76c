"""`autonomic`: the states show mostly in heart, breathing and skin; the EEG barely moves.

Heart rate rises with arousal and effort (B +20%, D +10%, C +6%); breathing gets
faster (B +30%, C +15%, D +10%) and shallower under sustained cognitive load (depth
C x0.8, D x0.9) but deeper in a startle's gasp (B x1.4); the skin-conductance level
climbs with arousal over ~10 s (tonic), each rise of arousal gives a phasic
response, and spontaneous skin-conductance responses (SCRs, a rise over ~1 s and a
recovery over several seconds, 1-3 s after their cause) come more often (per minute:
A 2, C 4, D 5, B 10).  The EEG band shares move a tenth as far as in `band-shares`.

Literature: heart rate and electrodermal activity track workload and arousal in
flight (Wilson 2002, Int. J. Aviat. Psychol. 12:3; Veltman & Gaillard 1998,
Ergonomics 41:656); respiration becomes faster and shallower under cognitive load
(Grassmann et al. 2016, Neural Plast. 2016:8146809); non-specific SCRs at 1-3 per
minute at rest, more under arousal, with 1-3 s latency (Dawson, Schell & Filion 2007,
Handbook of Psychophysiology; Boucsein 2012, Electrodermal Activity); startle and
surprise in the cockpit as an autonomic surge (Landman et al. 2017, Hum. Factors
59:1161).
"""
from beam_preprocess.synth.physiology import band_shares
from beam_preprocess.synth.physiology.signature import Physiology, per_state

_SHARES = band_shares.PHYSIOLOGY.eeg_band_shares
WEAK_EEG_SHARE = 0.1  # of band-shares' change from A

PHYSIOLOGY = Physiology(
    name="autonomic",
    summary="heart and breathing rate and depth, skin-conductance level and responses; "
            "weak EEG",
    eeg_band_shares=_SHARES[0] + WEAK_EEG_SHARE * (_SHARES - _SHARES[0]),
    heart_rate=per_state({"B": 1.20, "C": 1.06, "D": 1.10}, 1.0),
    breath_rate=per_state({"B": 1.30, "C": 1.15, "D": 1.10}, 1.0),
    breath_depth=per_state({"B": 1.4, "C": 0.8, "D": 0.9}, 1.0),
    gsr_arousal=per_state({"B": 1.0, "C": 0.4, "D": 0.6}, 0.0),
    gsr_response_gain=0.25,
    scl_gain=0.4,
    scr_per_minute=per_state({"A": 2.0, "B": 10.0, "C": 4.0, "D": 5.0}, 0.0),
)
