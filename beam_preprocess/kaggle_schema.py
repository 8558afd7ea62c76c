"""The schema of the Kaggle "Reducing Commercial Aviation Fatalities" CSVs.

Shared by the stand-in generator (`synth`) and the pipeline's parser, so that
both agree with the real files column for column.
"""
from trainer.records.spec import CHANNELS, CLASSES, TEST_KEY_COLUMNS

KEY_COLUMNS = TEST_KEY_COLUMNS[1:]   # crew, experiment, time, seat
TRAIN_COLUMNS: tuple[str, ...] = KEY_COLUMNS + CHANNELS + ("event",)
TEST_COLUMNS: tuple[str, ...] = TEST_KEY_COLUMNS + CHANNELS

CREWS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 13)
SEATS: tuple[int, ...] = (0, 1)
TRAIN_EXPERIMENTS: tuple[str, ...] = ("CA", "DA", "SS")
TEST_EXPERIMENT = "LOFT"
EXPERIMENTS: tuple[str, ...] = TRAIN_EXPERIMENTS + (TEST_EXPERIMENT,)
EVENTS: tuple[str, ...] = CLASSES  # A baseline, B startle (SS), C CA, D DA

# The state each training experiment induces (outside its baseline stretches).
EXPERIMENT_EVENT = {"CA": "C", "DA": "D", "SS": "B"}
