"""`none`: no state shows anywhere; the null control of the quality bench.

Every signal is generated exactly as at baseline whatever the label, so the labels
carry no information that the signals hold.  A yardstick that "beats the constant
prior" here is fitting noise, a split leak or the class layout: the bench's checks
must fail on this physiology, and the tests show that they do.
"""
from beam_preprocess.synth.physiology.signature import Physiology

PHYSIOLOGY = Physiology(
    name="none",
    summary="no state shows in any signal (a null control: nothing can be learnt)",
)
