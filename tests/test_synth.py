"""The stand-in generator reproduces the real files' shape, order, labels and quirks."""
from __future__ import annotations

import csv
import gzip
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from beam_preprocess.kaggle_schema import CREWS, TEST_COLUMNS, TRAIN_COLUMNS, TRAIN_EXPERIMENTS
from beam_preprocess.synth import generate, layout, main, physiology, signals, writer
from beam_preprocess.synth.physiology.signature import REGIONS
from trainer.records.spec import CLASSES

SCALE = 0.02
REAL_TRAIN_ROWS = 4_867_421
REAL_TEST_ROWS = 17_965_143
REAL_TRAIN_SHARES = {"A": 0.58, "B": 0.027, "C": 0.34, "D": 0.048}
EEG = [name for name in TRAIN_COLUMNS if name.startswith("eeg_")]
WINDOW = 256


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    """Both splits at SCALE, seed 0, written by the real command line."""
    out = tmp_path_factory.mktemp("synth")
    result = subprocess.run(
        [sys.executable, "-m", "beam_preprocess.synth", "--out", str(out), "--scale", str(SCALE), "--seed", "0"],
        check=True, capture_output=True, text=True)
    summary = json.loads(result.stdout)
    assert set(summary) == {"train.csv", "test.csv", "test_labels.csv"}
    return out


@pytest.fixture(scope="module")
def synth_train(synth_dir):
    return pd.read_csv(synth_dir / "train.csv")


@pytest.fixture(scope="module")
def synth_test(synth_dir):
    return pd.read_csv(synth_dir / "test.csv")


def header(path) -> str:
    with open(path) as handle:
        return handle.readline().rstrip("\n")


def test_headers_are_exactly_the_real_ones(synth_dir):
    assert header(synth_dir / "train.csv") == ",".join(TRAIN_COLUMNS)
    assert header(synth_dir / "test.csv") == ",".join(TEST_COLUMNS)
    assert header(synth_dir / "test_labels.csv") == "id,event"


def test_row_counts_follow_the_layout(synth_train, synth_test):
    expected = layout.expected_rows(SCALE)
    assert len(synth_train) == expected["train"]
    assert len(synth_test) == expected["test"]
    minimum = 2 * layout.MIN_SESSION_SECONDS * 256
    assert expected["train"] == 9 * 3 * max(minimum, round(2 * 92_132 * SCALE))
    assert expected["test"] == pytest.approx(REAL_TEST_ROWS * SCALE, rel=0.01)


@pytest.mark.parametrize("scale", [0.05, 1.0])
def test_scale_multiplies_the_real_row_counts(scale):
    expected = layout.expected_rows(scale)
    assert expected["train"] == pytest.approx(REAL_TRAIN_ROWS * scale, rel=0.01)
    assert expected["test"] == pytest.approx(REAL_TEST_ROWS * scale, rel=0.01)


def backward_jumps(times: np.ndarray) -> int:
    """Backward time jumps when the session's rows are in text order."""
    texts = writer.time_text(times)
    ordered = times[writer.text_order(texts)]
    return int((np.diff(ordered) < 0).sum())


def test_scale_one_sessions_are_shaped_like_the_real_ones():
    full = layout.build_session(0, 2, "CA", 1.0)
    assert full.num_rows == 92_132
    assert 360.0 < full.times[-1] < 361.0
    assert backward_jumps(full.times) in (32, 33)
    short = layout.build_session(0, 1, "SS", 1.0)
    assert 154.0 < short.times[-1] < 155.0
    assert backward_jumps(short.times) == 14
    assert layout.session_rows(1, "LOFT", 1.0) == 1_037_808
    loft = layout.build_session(0, 5, "LOFT", 1.0)
    assert 65 * 60 < loft.times[-1] < 69 * 60


def runs(labels: np.ndarray, value: int) -> list[int]:
    """Lengths of the runs of `value` in `labels`."""
    edges = np.diff(np.concatenate([[0], (labels == value).astype(int), [0]]))
    return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))


def test_scale_one_label_blocks_are_laid_out_like_the_real_ones():
    ca = layout.build_session(0, 3, "CA", 1.0).labels[0]
    assert ca[0] == layout.LABEL["A"] and runs(ca, layout.LABEL["A"])[0] < 7 * 256
    assert runs(ca, layout.LABEL["C"]) == [len(ca) - runs(ca, layout.LABEL["A"])[0]]
    da = layout.build_session(0, 3, "DA", 1.0).labels[0]
    d_blocks = runs(da, layout.LABEL["D"])
    assert all(1_200 < length < 1_400 for length in d_blocks)
    assert 0.12 <= np.mean(da == layout.LABEL["D"]) <= 0.16
    ss = layout.build_session(0, 3, "SS", 1.0).labels
    assert all(3_500 < length < 4_200 for length in runs(ss[0], layout.LABEL["B"]))
    assert len(runs(ss[0], layout.LABEL["B"])) in (1, 2)
    # Both seats follow the crew's schedule, transitions within 0.1 s of each other.
    assert np.mean(ss[0] != ss[1]) < 4 * 0.1 * 256 / len(ss[0])


def layout_shares(scale: float, experiments, events: str = "scaled") -> tuple[dict, set]:
    """Class shares over all sessions of `experiments`, and the (crew, class) pairs seen."""
    counts = np.zeros(len(CLASSES))
    seen = set()
    for crew in CREWS:
        for experiment in experiments:
            for labels in layout.build_session(0, crew, experiment, scale, events=events).labels:
                counts += np.bincount(labels, minlength=len(CLASSES))
                seen.update((crew, CLASSES[k]) for k in np.unique(labels))
    return dict(zip(CLASSES, counts / counts.sum())), seen


@pytest.mark.parametrize("scale", [0.05, 1.0])
def test_train_class_shares_are_close_to_the_real_ones(scale):
    shares, seen = layout_shares(scale, TRAIN_EXPERIMENTS)
    for name, real in REAL_TRAIN_SHARES.items():
        assert shares[name] == pytest.approx(real, abs=0.015), name
    assert seen == {(crew, name) for crew in CREWS for name in CLASSES}


def test_loft_has_a_plausible_mix():
    shares, _ = layout_shares(1.0, ["LOFT"])
    assert 0.82 < shares["A"] < 0.93 and shares["C"] > 0.04  # far from the training prior
    assert 0.005 < shares["B"] < 0.05 and 0.005 < shares["D"] < 0.05


def test_small_files_hold_every_class(synth_dir, synth_train):
    for crew, events in synth_train.groupby("crew").event:
        assert set(events) == set(CLASSES), crew
    labels = pd.read_csv(synth_dir / "test_labels.csv")
    assert set(labels.event) == set(CLASSES)


def test_rows_are_in_the_real_files_broken_order(synth_dir):
    with open(synth_dir / "train.csv", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    sessions = [(int(r[0]), r[1]) for r in rows]
    assert sessions == sorted(sessions, key=lambda key: (CREWS.index(key[0]), TRAIN_EXPERIMENTS.index(key[1])))
    for crew, experiment in {(c, e) for c, e in sessions}:
        block = [r for r, key in zip(rows, sessions) if key == (crew, experiment)]
        texts = [r[2] for r in block]
        assert texts == sorted(texts)
        assert [r[3] for r in block] == ["0", "1"] * (len(block) // 2)
        assert texts[0::2] == texts[1::2]
        seconds = np.array(texts[0::2], dtype=float)
        assert (np.diff(seconds) < 0).sum() >= 1
        assert len(set(texts[0::2])) == len(block) // 2
    assert all(re.fullmatch(r"\d+\.\d{8}", r[2]) for r in rows[:1000])


def test_files_read_back_with_csv_and_pandas(synth_dir, synth_train, synth_test):
    with open(synth_dir / "test.csv", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == list(TEST_COLUMNS)
        for line, row in enumerate(reader, start=2):
            assert len(row) == len(TEST_COLUMNS), line
            [float(value) for value in row[5:]]
    assert list(synth_train.columns) == list(TRAIN_COLUMNS)
    numeric = synth_train.columns[4:-1]
    assert all(pd.api.types.is_float_dtype(synth_train[name]) for name in numeric)
    assert set(synth_test.experiment) == {"LOFT"} and set(synth_train.experiment) == set(TRAIN_EXPERIMENTS)
    text = (synth_dir / "train.csv").read_text()[:5_000_000]
    assert re.search(r",\d+\.\d{10,},", text), "no float noise like 33.160301000000004"
    assert not re.search(r"\de-?\d", text), "values must be plain decimals, not 1e-05"
    assert ",-0.0," not in text


def test_test_ids_holes_and_shared_time_lists(synth_dir, synth_test):
    assert list(synth_test.id) == list(range(len(synth_test)))
    labels = pd.read_csv(synth_dir / "test_labels.csv")
    assert list(labels.id) == list(synth_test.id)
    for crew, rows in synth_test.groupby("crew"):
        seat0 = np.sort(rows.time[rows.seat == 0].to_numpy())
        seat1 = np.sort(rows.time[rows.seat == 1].to_numpy())
        assert np.array_equal(seat0, seat1), crew
        assert np.diff(seat0).max() > 2 / 256, f"crew {crew} has no missing-time hole"
        assert len(np.unique(seat0)) == len(seat0)


def longest_zero_run(values: np.ndarray) -> int:
    return max(runs(values, 0.0), default=0) if (values == 0.0).any() else 0


def test_dropouts_flatlines_and_crew_differences(synth_train, synth_test):
    sessions = synth_train.groupby(["crew", "experiment", "seat"])
    assert sessions.ecg.apply(lambda v: (v == 0).all()).sum() >= 1
    assert sessions.gsr.apply(lambda v: (v == 0).all()).sum() >= 1
    assert synth_train.groupby("crew").ecg.max().le(0).sum() == 1, "one crew's ecg is all non-positive"
    flat = 0
    for _, rows in synth_test.groupby(["crew", "seat"]):
        rows = rows.sort_values("time")
        flat += max(longest_zero_run(rows[name].to_numpy()) for name in EEG) >= 256
    assert flat >= 1, "no EEG flat-line stretch in test"
    spread = synth_train.groupby("crew")[EEG].std().median(axis=1)
    assert spread.max() / spread.min() > 1.4


def test_channels_are_heavy_tailed_and_step_like(synth_train):
    eeg = synth_train[EEG].to_numpy()
    z = (eeg - eeg.mean(axis=0)) / eeg.std(axis=0)
    assert np.abs(z).max() > 15 and np.percentile(np.abs(z), 75) < 0.6
    for _, rows in synth_train.groupby(["crew", "experiment", "seat"]):
        r = rows.sort_values("time").r.to_numpy()
        assert 0.75 < np.mean(r[1:] == r[:-1]) < 0.95
    seat_levels = synth_train.groupby(["crew", "seat"]).r.mean()
    assert seat_levels.max() - seat_levels.min() > 60


def window_features(session: pd.DataFrame) -> tuple[list, list]:
    """Relative EEG band powers (theta, alpha, beta, gamma; log, channel mean) of the
    session's non-overlapping 1-s windows that hold one class."""
    values = session.sort_values("time")
    eeg = values[EEG].to_numpy()
    events = values.event.to_numpy()
    freqs = np.fft.rfftfreq(WINDOW, 1 / 256)
    features, labels = [], []
    for start in range(0, len(eeg) - WINDOW + 1, WINDOW):
        if (events[start:start + WINDOW] != events[start]).any():
            continue
        power = np.abs(np.fft.rfft(eeg[start:start + WINDOW] - eeg[start:start + WINDOW].mean(0), axis=0)) ** 2
        total = power[(freqs >= 1) & (freqs < 45)].sum(0) + 1e-9
        features.append([np.log(power[(freqs >= lo) & (freqs < hi)].sum(0) / total + 1e-9).mean()
                         for lo, hi in ((4, 8), (8, 13), (15, 30), (30, 45))])
        labels.append(events[start])
    return features, labels


def fisher_ratio(features: np.ndarray, labels: np.ndarray) -> float:
    """Best single-feature between-class / within-class variance ratio."""
    means = features.mean(0)
    between = sum((labels == k).mean() * (features[labels == k].mean(0) - means) ** 2 for k in CLASSES)
    within = sum((labels == k).mean() * features[labels == k].var(0) for k in CLASSES)
    return float((between / within).max())


def held_out_crew_accuracy(features: np.ndarray, labels: np.ndarray, crews: np.ndarray) -> float:
    """Balanced accuracy of a nearest-centroid classifier, each crew held out in turn."""
    scores = []
    for crew in np.unique(crews):
        fit = crews != crew
        mean, sd = features[fit].mean(0), features[fit].std(0) + 1e-9
        z = (features - mean) / sd
        centroids = np.array([z[fit & (labels == k)].mean(0) for k in CLASSES])
        predicted = np.array(CLASSES)[((z[~fit, None] - centroids) ** 2).sum(-1).argmin(1)]
        truth = labels[~fit]
        scores.append(np.mean([np.mean(predicted[truth == k] == k) for k in CLASSES if (truth == k).any()]))
    return float(np.mean(scores))


def test_states_are_learnable_from_one_second_not_from_single_samples(synth_train):
    channels = EEG + ["ecg", "r", "gsr"]
    standardised = synth_train.copy()
    seats = standardised.groupby(["crew", "seat"])[channels]
    standardised[channels] = (standardised[channels] - seats.transform("mean")) / (seats.transform("std") + 1e-9)
    samples = standardised.sample(n=20_000, random_state=0)
    sample_x, sample_y = samples[channels].to_numpy(), samples.event.to_numpy()
    window_x, window_y, window_crews = [], [], []
    for (crew, _, _), session in synth_train.groupby(["crew", "experiment", "seat"]):
        features, labels = window_features(session)
        window_x += features
        window_y += labels
        window_crews += [crew] * len(labels)
    window_x, window_y = np.array(window_x), np.array(window_y)
    assert set(window_y) == set(CLASSES)
    window_fisher, sample_fisher = fisher_ratio(window_x, window_y), fisher_ratio(sample_x, sample_y)
    assert window_fisher > 0.3 and window_fisher > 5 * sample_fisher
    window_accuracy = held_out_crew_accuracy(window_x, window_y, np.array(window_crews))
    sample_accuracy = held_out_crew_accuracy(sample_x, sample_y, samples.crew.to_numpy())
    assert window_accuracy > 0.55 and window_accuracy > sample_accuracy + 0.2


def file_bytes(directory) -> dict:
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, synth_dir):
    generate(str(tmp_path / "again"), SCALE, 0, ["train"])
    assert (tmp_path / "again" / "train.csv").read_bytes() == (synth_dir / "train.csv").read_bytes()
    generate(str(tmp_path / "a"), 0.005, 0, ["test"])
    generate(str(tmp_path / "b"), 0.005, 0, ["test"])
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    generate(str(tmp_path / "other"), SCALE, 1, ["train"])
    assert (tmp_path / "other" / "train.csv").read_bytes() != (synth_dir / "train.csv").read_bytes()


def test_gzip_output_is_reproducible_and_holds_the_same_text(tmp_path, synth_dir):
    summary = generate(str(tmp_path), SCALE, 0, ["train"], compress=True)
    assert set(summary) == {"train.csv.gz"}
    packed = (tmp_path / "train.csv.gz").read_bytes()
    assert packed[4:8] == bytes(4), "gzip header carries a timestamp"
    assert gzip.decompress(packed) == (synth_dir / "train.csv").read_bytes()


def test_bad_arguments_are_refused_clearly(tmp_path):
    with pytest.raises(SystemExit, match="unknown split"):
        main(["--out", str(tmp_path), "--splits", "train,valid"])
    with pytest.raises(SystemExit, match="scale must be positive"):
        main(["--out", str(tmp_path), "--scale", "0"])
    for option, value in (("--physiology", "calm"), ("--events", "squeezed")):
        result = subprocess.run([sys.executable, "-m", "beam_preprocess.synth", "--out", str(tmp_path),
                                 option, value], capture_output=True, text=True)
        last = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 2 and last.startswith(f"pilotstate-synth: error: argument {option}")
        assert f"invalid choice: '{value}'" in last
    assert not os.listdir(tmp_path)


def test_values_are_written_as_plain_decimals():
    values = np.array([0.0, -0.0, 5.0, -0.00007, 12.5, 1199.99999, 33.160301000000004, -99999.0])
    text = writer.join_rows([writer.decimal_block(values[:, None], 5)])
    assert text == b",0.0,0.0,5.0,-0.00007,12.5,1199.99999,33.160301000000004,-99999.0"
    with pytest.raises(ValueError, match="too large"):
        writer.decimal_block(np.array([[100000.0]]), 2)


def test_time_text_sorts_like_the_real_files():
    times = np.arange(120 * 256) / 256
    texts = writer.time_text(times)
    assert texts[3] == b"0.01171875" and texts[0] == b"0.00000000"
    ordered = list(texts[writer.text_order(texts)])
    after = ordered.index(b"109.99609375") + 1
    assert ordered[after] == b"11.00000000"
    assert ordered.index(b"10.00000000") < ordered.index(b"100.00000000") < ordered.index(b"2.00000000")


def test_single_sample_spread_is_the_same_in_every_state(synth_train):
    assert np.allclose(physiology.get("band-shares").eeg_band_shares.sum(axis=1), 1.0)
    seats = synth_train.groupby(["crew", "seat"])[EEG]
    z = (synth_train[EEG] - seats.transform("median")) / seats.transform("std")
    spread = z.abs().median(axis=1).groupby(synth_train.event).median()
    assert spread.max() / spread.min() < 1.1, spread.to_dict()


# Events at their real length (--events real) -----------------------------------------


def test_real_events_keep_their_length_when_sessions_shrink():
    for crew in CREWS:
        ss = layout.build_session(0, crew, "SS", 0.1, events="real").labels[0]
        da = layout.build_session(0, crew, "DA", 0.1, events="real").labels[0]
        ca = layout.build_session(0, crew, "CA", 0.1, events="real").labels[0]
        # At least one block of the session's state, each as long as at scale 1.
        assert runs(ss, layout.LABEL["B"]) and all(3_500 < n < 4_200 for n in runs(ss, layout.LABEL["B"]))
        assert runs(da, layout.LABEL["D"]) and all(1_200 < n < 1_400 for n in runs(da, layout.LABEL["D"]))
        prefix = runs(ca, layout.LABEL["A"])[0] / 256  # the real 0.5-0.8 s (crew 1: 6.6 s), +-jitter
        assert 6.5 < prefix < 6.7 if crew == 1 else 0.45 < prefix < 0.85
    # Squeezed, the same sessions' B blocks are a fraction of that.
    squeezed = layout.build_session(0, 2, "SS", 0.1).labels[0]
    assert max(runs(squeezed, layout.LABEL["B"])) < 1_000


def test_real_loft_events_are_as_long_as_at_full_scale_and_fewer():
    lengths = {name: [] for name in "BCD"}
    for crew in CREWS:
        labels = layout.build_session(0, crew, "LOFT", 0.1, events="real").labels[0]
        for name in lengths:
            inner = runs(labels, layout.LABEL[name])
            # a block cut by the session's ends is shorter: look at the inner ones
            starts_or_ends_cut = labels[0] == layout.LABEL[name] or labels[-1] == layout.LABEL[name]
            lengths[name] += inner[1:-1] if starts_or_ends_cut else inner
    assert all(14 * 256 < n < 16 * 256 for n in lengths["B"])
    assert all(29 * 256 < n < 91 * 256 for n in lengths["C"])
    assert all(4.9 * 256 < n < 10.1 * 256 for n in lengths["D"])
    shares, _ = layout_shares(0.1, ["LOFT"], events="real")
    assert 0.8 < shares["A"] < 0.95


def test_real_event_sessions_are_long_enough_to_hold_a_startle():
    assert layout.session_rows(1, "SS", 0.01, "real") == layout.REAL_EVENTS_MIN_SESSION_SECONDS * 256
    expected = layout.expected_rows(0.01, "real")
    built = sum(2 * layout.build_session(0, c, e, 0.01, events="real").num_rows
                for c in CREWS for e in TRAIN_EXPERIMENTS)
    assert built == expected["train"]
    with pytest.raises(ValueError, match="unknown events 'squeezed'"):
        layout.build_session(0, 1, "CA", 0.1, events="squeezed")


# Physiologies ------------------------------------------------------------------------

WHERE_WINDOW = 1024  # 4 s: rates and band powers need a few seconds
FAMILIES = ("eeg", "autonomic", "artefacts")


def where_features(window: pd.DataFrame) -> dict[str, np.ndarray]:
    """One window's features by where they look: EEG band powers and shares per region;
    heart and breathing rate, breathing depth, skin level and slope; blink/movement
    (<2 Hz frontal) and muscle (>60 Hz) power."""
    channels = [name for region in REGIONS.values() for name in region]
    eeg = window[channels].to_numpy()
    eeg = eeg - eeg.mean(0)
    freqs = np.fft.rfftfreq(len(eeg), 1 / 256)
    power = np.abs(np.fft.rfft(eeg, axis=0)) ** 2
    bands = np.stack([power[(freqs >= lo) & (freqs < hi)].sum(0)
                      for lo, hi in ((1, 4), (4, 8), (8, 13), (13, 30), (30, 60))])
    edges = np.cumsum([0] + [len(r) for r in REGIONS.values()])
    regions = np.stack([bands[:, lo:hi].mean(1) for lo, hi in zip(edges, edges[1:])])
    slow_frontal = power[(freqs >= 0.3) & (freqs < 2), :7].sum(0).mean()
    fast = power[freqs >= 60].sum(0)
    ecg, r, gsr = (window[name].to_numpy() for name in ("ecg", "r", "gsr"))

    def rate(values: np.ndarray, lo: float, hi: float) -> float:
        spectrum = np.abs(np.fft.rfft(values - values.mean())) ** 2
        inside = (freqs >= lo) & (freqs < hi)
        return freqs[inside][spectrum[inside].argmax()]

    return {
        "eeg": np.concatenate([np.log(regions).ravel(),
                               np.log(regions / regions.sum(1, keepdims=True)).ravel()]),
        "autonomic": np.array([rate(ecg, 0.8, 2.5), rate(r, 0.1, 0.6), r.std(), gsr.mean(),
                               gsr[-256:].mean() - gsr[:256].mean()]),
        "artefacts": np.log([slow_frontal, fast[:7].mean(), fast[10:14].mean()]),
    }


def where_accuracy(train: pd.DataFrame) -> dict[str, float]:
    """Held-out-crew balanced accuracy of each feature family, standardised per pilot."""
    rows = []
    for (crew, _, seat), session in train.groupby(["crew", "experiment", "seat"]):
        session = session.sort_values("time")
        events = session.event.to_numpy()
        for start in range(0, len(session) - WHERE_WINDOW + 1, WHERE_WINDOW // 2):
            if (events[start:start + WHERE_WINDOW] == events[start]).all():
                rows.append((crew, seat, events[start],
                             where_features(session.iloc[start:start + WHERE_WINDOW])))
    crews = np.array([row[0] for row in rows])
    pilots = pd.Series([f"{row[0]}-{row[1]}" for row in rows])
    labels = np.array([row[2] for row in rows])
    accuracy = {}
    for family in FAMILIES:
        values = pd.DataFrame([row[3][family] for row in rows])
        grouped = values.groupby(pilots)
        z = ((values - grouped.transform("mean")) / (grouped.transform("std") + 1e-9)).to_numpy()
        accuracy[family] = held_out_crew_accuracy(z, labels, crews)
    return accuracy


@pytest.fixture(scope="module")
def where_the_states_show(tmp_path_factory) -> dict[str, dict[str, float]]:
    """Per physiology, how well each feature family tells the states (train, scale 0.1)."""
    result = {}
    for name in physiology.PHYSIOLOGIES:
        out = tmp_path_factory.mktemp(name)
        generate(str(out), 0.1, 0, ["train"], physiology_name=name, events="real")
        result[name] = where_accuracy(pd.read_csv(out / "train.csv"))
    return result


HOME = {"band-shares": "eeg", "band-power": "eeg", "autonomic": "autonomic",
        "weak-late": "autonomic", "artefacts": "artefacts"}


def test_every_physiology_puts_the_states_somewhere_else(where_the_states_show):
    """Chance is 0.25.  Each physiology's states show best where it puts them, and the
    physiologies do not all put them in one place."""
    assert set(HOME) == set(physiology.SIGNAL)
    for name, family in HOME.items():
        accuracy = where_the_states_show[name]
        assert accuracy[family] > 0.5 and accuracy[family] == max(accuracy.values()), (name, accuracy)
    # Mostly autonomic: the EEG tells little; state-linked artefacts: the autonomic channels nothing.
    assert where_the_states_show["autonomic"]["eeg"] < 0.35
    assert where_the_states_show["artefacts"]["autonomic"] < 0.35
    # Weak and late in some pilots: harder than the full-strength signs it is made of.
    assert where_the_states_show["weak-late"]["autonomic"] < where_the_states_show["autonomic"]["autonomic"]
    assert where_the_states_show["weak-late"]["eeg"] < where_the_states_show["band-power"]["eeg"]


def test_the_null_physiology_holds_no_state_anywhere(where_the_states_show):
    assert max(where_the_states_show[physiology.NULL].values()) < 0.35, where_the_states_show


def test_band_power_changes_the_window_power_and_band_shares_do_not():
    """band-power's changes are not compensated: in C, frontal theta power is up and
    occipital alpha down against A; band-shares keeps every state's total variance."""
    labels = np.repeat(np.array([CLASSES.index("A"), CLASSES.index("C")], dtype=np.uint8), 60 * 256)
    profile = signals.seat_profile(0, 2, 0, negative_ecg=False)
    freqs = np.fft.rfftfreq(len(labels) // 2, 1 / 256)

    def band_power(values: np.ndarray, channel: str, lo: float, hi: float) -> np.ndarray:
        """Power of `channel` in [lo, hi) Hz in the A half and in the C half."""
        halves = values[:, EEG.index(channel)].reshape(2, -1)
        spectrum = np.abs(np.fft.rfft(halves - halves.mean(1, keepdims=True), axis=1)) ** 2
        return spectrum[:, (freqs >= lo) & (freqs < hi)].sum(1)

    def generated(name: str) -> np.ndarray:
        rng, extra = np.random.default_rng(1), np.random.default_rng(2)
        return signals.seat_signals(profile, labels, rng, physiology.get(name), extra)

    power = generated("band-power")
    theta = band_power(power, "eeg_fz", 5, 7)
    alpha = band_power(power, "eeg_o1", 9, 11)
    assert theta[1] / theta[0] > 1.3 and alpha[1] / alpha[0] < 0.8
    shares = generated("band-shares")
    total = band_power(shares, "eeg_fz", 1, 60)
    assert 0.85 < total[1] / total[0] < 1.15


def test_pilots_respond_with_their_own_gain_and_latency():
    weak = physiology.get("weak-late")
    responses = [weak.pilot_response(0, crew, seat) for crew in CREWS for seat in (0, 1)]
    gains = [gain for gain, _ in responses]
    assert any(gain == 0.0 for gain in gains) and max(gains) > 0.7
    assert all(gain == 0.0 or 0.3 <= gain <= 1.0 for gain in gains)
    assert all(256 <= latency <= 4 * 256 for _, latency in responses)
    assert responses == [weak.pilot_response(0, crew, seat) for crew in CREWS for seat in (0, 1)]
    assert physiology.get("band-shares").pilot_response(0, 1, 0) == (1.0, 0)
    # A silent pilot's physiology is the baseline in every state.
    silent = weak.for_pilot(0.0)
    for name in silent.STATE_FIELDS:
        table = getattr(silent, name)
        assert np.allclose(table, table[0]), name


def test_a_late_pilot_shows_the_state_after_its_label():
    labels = np.array([0] * 10 + [1] * 10, dtype=np.uint8)
    shifted = signals.delayed(labels, 3)
    assert shifted.tolist() == [0] * 13 + [1] * 7
    assert signals.delayed(labels, 0) is labels


def test_each_physiology_is_deterministic_and_differs_from_the_others(tmp_path):
    texts = {}
    for name in physiology.PHYSIOLOGIES:
        generate(str(tmp_path / name), 0.005, 0, ["test"], physiology_name=name, events="real")
        texts[name] = (tmp_path / name / "test.csv").read_bytes()
    generate(str(tmp_path / "again"), 0.005, 0, ["test"], physiology_name="artefacts", events="real")
    assert (tmp_path / "again" / "test.csv").read_bytes() == texts["artefacts"]
    assert len(set(texts.values())) == len(texts)
    labels = {name: (tmp_path / name / "test_labels.csv").read_bytes() for name in physiology.PHYSIOLOGIES}
    assert len(set(labels.values())) == 1  # the same sessions and events, other signals
