"""The whole preprocessing job as small named composite transforms.

    ReadTrain/ReadTest   byte ranges -> line chunks -> RowBatches (+ bad rows)
    DeadChannels<Kind>   constant channels per pilot session, named in the manifest
    ChooseValidation     seeded, class-stratified validation time units
    FindRepeatedIds      test rows whose id an earlier row has (grouped by id bucket)
    ComputeStatistics    scaling statistics from training units only
    Key<Kind>Blocks      rows keyed by (crew, experiment, seat, time block) + carry;
                         on a local runner spilled to files, only their places travel
    GroupSessionBlocks   the parts of every session block together
    BuildSegments        drop repeated ids, sort, de-duplicate, split into runs, scale
    BalanceValidation    the same number of validation windows per class
    Write<Split>         GZIP TFRecord shards per split
    RecoverRawLines      repeated-time and repeated-id rows get their line text read back
    WriteQuarantine      bad rows with file, line, reason, raw text
    WriteManifest        counts, statistics, fingerprints; checks row accounting
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import os
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam import coders
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.pvalue import AsList, AsSingleton

from beam_preprocess import kaggle_schema as ks
from beam_preprocess import progress
from beam_preprocess.claimed_sinks import ClaimedTFRecordSink
from beam_preprocess.csv_source import (InputFile, ReadCsvChunks, fingerprint, has_data_lines,
                                        list_inputs)
from beam_preprocess.dead_channels import FindDeadChannels
from beam_preprocess.dead_channels import sort_key as dead_channel_order
from beam_preprocess.manifest import (SumSummaries, build_manifest, check_row_accounting,
                                      manifest_path, write_json)
from beam_preprocess.options import OUTPUT_NEUTRAL_OPTIONS, PreprocessConfig
from beam_preprocess.parse import BAD_ROWS, ROWS_IN, UNTERMINATED, ParseChunks
from beam_preprocess.quarantine import RecoverRawLines, WriteQuarantine, quarantine_path
from beam_preprocess.scaling import MergePartials, Scaler, compute_statistics, unit_partials
from beam_preprocess.segments import (BalancedThresholds, block_segments, candidate_hashes,
                                      segment_summary, select_window_ends)
from beam_preprocess.sessions import (RepeatedIds, SortedBlock, id_bucket_parts, repeated_ids,
                                      session_block_keys)
from beam_preprocess.spill import (load_ids, load_rows, load_segment, spill_file_name,
                                   spill_id_parts, spill_parts, spill_segment)
from beam_preprocess.splits import (SplitAssigner, batch_crews, choose_validation_units,
                                    holdout_validation_units, unit_histograms)
from trainer.records import spec as record_spec
from trainer.shared.output_claim import ClaimTicket

_MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class JobInputs:
    """Everything checked on the launcher before the job is built."""

    train_files: tuple[InputFile, ...]
    test_files: tuple[InputFile, ...]
    fixed_stats: Optional[dict]   # statistics of an earlier run (test-only runs)

    @property
    def files(self) -> tuple[InputFile, ...]:
        return self.train_files + self.test_files


def resolve_inputs(config: PreprocessConfig, fixed_stats: Optional[dict]) -> JobInputs:
    """Lists and header-checks the inputs; fails at once naming file and column."""
    train = list_inputs(config.train, "train", ks.TRAIN_COLUMNS) if config.train else []
    test = (list_inputs(config.test, "test", ks.TEST_COLUMNS, first_index=len(train))
            if config.test else [])
    for kind, files, pattern in (("train", train, config.train), ("test", test, config.test)):
        if files and not any(has_data_lines(f) for f in files):
            raise ValueError(f"--{kind} {pattern}: header only, no data rows")
    return JobInputs(tuple(train), tuple(test), fixed_stats)


class ReadAndParse(beam.PTransform):
    """Input files -> RowBatches; tagged outputs bad_rows, rows_in (line counts) and
    unterminated ((file, line) of a last line without line end)."""

    def __init__(self, files: Sequence[InputFile], config: PreprocessConfig):
        super().__init__()
        self._files, self._config = list(files), config

    def expand(self, pbegin):
        return (
            pbegin
            | "ReadCsvChunks" >> ReadCsvChunks(
                self._files, self._config.range_mib * _MIB, self._config.chunk_mib * _MIB)
            | "ParseChunks" >> beam.ParDo(ParseChunks(self._files)).with_outputs(
                BAD_ROWS, ROWS_IN, UNTERMINATED, main="rows"))


class ChooseValidation(beam.PTransform):
    """Training rows -> singleton frozenset of validation units (crew, experiment, unit)."""

    def __init__(self, config: PreprocessConfig):
        super().__init__()
        self._config = config

    def expand(self, train_rows):
        c = self._config
        if c.holdout_crews:  # checked against the crews read (the job fails before writing)
            return (
                train_rows
                | "BatchCrews" >> beam.Map(batch_crews)
                | "AllCrews" >> beam.CombineGlobally(lambda sets: frozenset().union(*sets))
                | "CheckHoldoutCrews" >> beam.Map(holdout_validation_units, c.holdout_crews))
        if c.valid_fraction == 0:
            return train_rows.pipeline | "NoValidationUnits" >> beam.Create([frozenset()])
        return (
            train_rows
            | "UnitHistograms" >> beam.FlatMap(unit_histograms, c.valid_block_seconds, c.window)
            | "SumPerUnit" >> beam.CombinePerKey(sum)
            | "CollectUnits" >> beam.combiners.ToList()
            | "ChooseUnits" >> beam.Map(choose_validation_units, c.valid_fraction, c.seed))


def _training_unit_test(valid_units: frozenset, holdout_crews: Sequence[int]):
    def is_training_unit(crew, experiment, unit):
        return crew not in holdout_crews and (crew, experiment, unit) not in valid_units
    return is_training_unit


class ComputeStatistics(beam.PTransform):
    """Training rows + validation units -> singleton statistics (manifest form)."""

    def __init__(self, config: PreprocessConfig, valid_units):
        super().__init__()
        self._config, self._valid_units = config, valid_units

    def expand(self, train_rows):
        c = self._config

        def finish(summaries, valid_units):
            return compute_statistics(summaries, c.scaling, c.scale_by,
                                      _training_unit_test(valid_units, c.holdout_crews))

        return (
            train_rows
            | "UnitPartials" >> beam.FlatMap(unit_partials, c.valid_block_seconds,
                                             c.scaling, c.seed)
            | "MergePerUnit" >> beam.CombinePerKey(MergePartials())
            | "CollectUnits" >> beam.combiners.ToList()
            | "Finish" >> beam.Map(finish, AsSingleton(self._valid_units)))


class KeySessionBlocks(beam.DoFn):
    """RowBatch -> ((crew, experiment, seat, block), (MAIN or CARRY, rows)).

    With a spill directory the rows of a batch go to one file there and the
    element carries their SpilledRows location instead (see spill.py).
    """

    def __init__(self, config: PreprocessConfig, spill_dir: Optional[str]):
        self._block, self._carry = config.block_seconds, config.carry_seconds
        self._spill_dir = spill_dir

    def process(self, batch):
        parts = session_block_keys(batch, self._block, self._carry)
        if self._spill_dir is None:
            yield from parts
        else:
            yield from spill_parts(parts, os.path.join(self._spill_dir, spill_file_name(batch)))


class KeyIdBuckets(beam.DoFn):
    """Test RowBatch -> (id bucket, [2, n] ids and order keys), spilled like
    KeySessionBlocks' parts when there is a spill directory."""

    def __init__(self, spill_dir: Optional[str]):
        self._spill_dir = spill_dir

    def process(self, batch):
        parts = id_bucket_parts(batch)
        if self._spill_dir is None:
            yield from parts
        else:
            yield from spill_id_parts(
                parts, os.path.join(self._spill_dir, spill_file_name(batch, "ids")))


class FindRepeatedIds(beam.PTransform):
    """Test rows -> singleton RepeatedIds: the rows whose id a row before them in file
    and line order has, over all test files.  Grouped by id bucket, so a worker holds
    one bucket's ids, and a local run's grouping (spilled) only where they are."""

    def __init__(self, spill_dir: Optional[str]):
        super().__init__()
        self._spill_dir = spill_dir

    def expand(self, test_rows):
        return (
            test_rows
            | "KeyIdBuckets" >> beam.ParDo(KeyIdBuckets(self._spill_dir))
            | "GroupIdBuckets" >> beam.GroupByKey()
            | "RepeatsPerBucket" >> beam.Map(
                lambda bucket: repeated_ids(load_ids(part) for part in bucket[1]))
            | "CollectRepeats" >> beam.combiners.ToList()
            | "IndexRepeats" >> beam.Map(RepeatedIds.from_parts))


class BuildSegments(beam.DoFn):
    """A session block's rows -> (split, scaled Segment); rows of a repeated test id
    and repeated times to bad_rows.

    With a spill directory, a validation Segment is written there and travels as its
    SpillLocation (BalanceValidation reads it back).
    """

    def __init__(self, config: PreprocessConfig, paths: Sequence[str],
                 spill_dir: Optional[str] = None):
        self._config, self._paths, self._spill_dir = config, list(paths), spill_dir
        self._cache: tuple = ((), None, None)

    def _tools(self, valid_units, stats):
        """SplitAssigner and Scaler, rebuilt only when the side inputs change."""
        key = (id(valid_units), id(stats))
        if self._cache[0] != key:
            self._cache = (key, SplitAssigner(valid_units, self._config.holdout_crews,
                                              self._config.valid_block_seconds), Scaler(stats))
        return self._cache[1], self._cache[2]

    def process(self, element, valid_units, stats, repeats: Optional[RepeatedIds] = None):
        (_, _, _, block), values = element
        parts = [(role, load_rows(stored)) for role, stored in values]
        sorted_block = SortedBlock(parts, self._config.window, self._paths, repeats)
        for bad in sorted_block.bad_rows:
            yield beam.pvalue.TaggedOutput(BAD_ROWS, bad)
        if sorted_block.rows is not None:
            progress.add("BuildSegments", sorted_block.main_rows, "rows sorted and scaled")
        assigner, scaler = self._tools(valid_units, stats)
        for split, segment in block_segments(block, sorted_block, assigner, scaler):
            if split == "valid" and self._spill_dir is not None:
                segment = spill_segment(segment, self._spill_dir)
            yield split, segment


class BalanceValidation(beam.PTransform):
    """Valid segments (or their SpillLocations) -> the segments with their balanced
    window_ends."""

    def __init__(self, config: PreprocessConfig):
        super().__init__()
        self._config = config

    def expand(self, valid_segments):
        window, seed = self._config.window, self._config.seed
        thresholds = (
            valid_segments
            | "CandidateEnds" >> beam.Map(
                lambda stored: candidate_hashes(load_segment(stored), window, seed))
            | "ClassThresholds" >> beam.CombineGlobally(
                BalancedThresholds(self._config.valid_windows_per_class)))

        def with_ends(stored, limits):
            segment = load_segment(stored)
            return dataclasses.replace(
                segment, window_ends=select_window_ends(segment, window, seed, limits))

        return valid_segments | "AttachWindowEnds" >> beam.Map(with_ends, AsSingleton(thresholds))


def _encode_counted(segment, stage: str) -> bytes:
    """Encodes a segment as a tf.train.Example (in plain Python: the job never imports
    TensorFlow), counting it."""
    progress.add(stage, 1, "records encoded")
    return record_spec.encode_segment(segment)


class WriteSplit(beam.PTransform):
    """Segments of one split -> GZIP TFRecord shards, moved into place only while
    `ticket`'s claim is this job's; returns their relative names."""

    def __init__(self, output: str, split: str, num_shards: int, ticket: ClaimTicket):
        super().__init__()
        self._output, self._split, self._num_shards = output.rstrip("/"), split, num_shards
        self._ticket = ticket

    def expand(self, segments):
        prefix = f"{self._output}/{record_spec.shard_prefix(self._split)}"
        return (
            segments
            | "Encode" >> beam.Map(_encode_counted, f"Write{self._split.title()}")
            | "WriteTFRecords" >> beam.io.Write(ClaimedTFRecordSink(
                self._ticket, prefix, coder=coders.BytesCoder(),
                file_name_suffix=record_spec.SHARD_SUFFIX, num_shards=self._num_shards,
                shard_name_template=None, compression_type=CompressionTypes.GZIP,
                triggering_frequency=None))
            | "RelativeNames" >> beam.Map(lambda path, root=self._output: path[len(root) + 1:]))


def _package_version() -> str:
    try:
        return importlib.metadata.version("pilotstate")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def manifest_options(config: PreprocessConfig) -> dict:
    """The options the manifest records: all but OUTPUT_NEUTRAL_OPTIONS (where a local
    run spills, what it prints: no effect on the output)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in OUTPUT_NEUTRAL_OPTIONS}


def build_pipeline(pipeline: beam.Pipeline, config: PreprocessConfig, inputs: JobInputs,
                   ticket: ClaimTicket, spill_dir: Optional[str] = None) -> None:
    """Adds the whole job to `pipeline`; with `spill_dir`, parsed rows spill there.
    Shards, quarantine and manifest are committed only while `ticket`'s claim on the
    output is this job's (trainer/shared/output_claim.py)."""
    c = config
    rows_in, bad_rows, keyed_rows, unterminated, dead_channels = [], [], [], [], []
    paths = [f.path for f in inputs.files]
    valid_units = stats = None
    if inputs.train_files:
        train = pipeline | "ReadTrain" >> ReadAndParse(inputs.train_files, c)
        valid_units = train.rows | "ChooseValidation" >> ChooseValidation(c)
        stats = train.rows | "ComputeStatistics" >> ComputeStatistics(c, valid_units)
        rows_in.append(train[ROWS_IN])
        bad_rows.append(train[BAD_ROWS])
        keyed_rows.append(train.rows | "KeyTrainBlocks" >> beam.ParDo(
            KeySessionBlocks(c, spill_dir)))
        unterminated.append(train[UNTERMINATED])
        dead_channels.append(train.rows | "DeadChannelsTrain" >> FindDeadChannels("train", paths))
    else:
        valid_units = pipeline | "NoValidationUnits" >> beam.Create([frozenset()])
        stats = pipeline | "FixedStatistics" >> beam.Create([inputs.fixed_stats])
    if inputs.test_files:
        test = pipeline | "ReadTest" >> ReadAndParse(inputs.test_files, c)
        rows_in.append(test[ROWS_IN])
        bad_rows.append(test[BAD_ROWS])
        keyed_rows.append(test.rows | "KeyTestBlocks" >> beam.ParDo(
            KeySessionBlocks(c, spill_dir)))
        unterminated.append(test[UNTERMINATED])
        dead_channels.append(test.rows | "DeadChannelsTest" >> FindDeadChannels("test", paths))
        repeats = test.rows | "FindRepeatedIds" >> FindRepeatedIds(spill_dir)
    else:
        repeats = pipeline | "NoTestIds" >> beam.Create([RepeatedIds.from_parts([])])

    segments = (
        keyed_rows | "AllBlockParts" >> beam.Flatten()
        | "GroupSessionBlocks" >> beam.GroupByKey()
        | "BuildSegments" >> beam.ParDo(
            BuildSegments(c, paths, spill_dir), AsSingleton(valid_units), AsSingleton(stats),
            AsSingleton(repeats)).with_outputs(BAD_ROWS, main="segments"))
    bad_rows.append(segments[BAD_ROWS] | "RecoverRawLines" >> RecoverRawLines())
    by_split = (segments.segments
                | "PartitionBySplit" >> beam.Partition(
                    lambda kv, n: record_spec.SPLITS.index(kv[0]), len(record_spec.SPLITS)))
    split_segments = {}
    for split, part in zip(record_spec.SPLITS, by_split):
        wanted = inputs.test_files if split == "test" else inputs.train_files
        if wanted:
            split_segments[split] = part | f"Drop{split.title()}Key" >> beam.Values()
    if "valid" in split_segments:
        split_segments["valid"] |= "BalanceValidation" >> BalanceValidation(c)

    summaries, shards = {}, {}
    for split, segs in split_segments.items():
        write = WriteSplit(c.output, split, c.num_shards, ticket)
        shards[split] = AsList(segs | f"Write{split.title()}" >> write)
        summaries[split] = AsSingleton(
            segs | f"Summarize{split.title()}" >> beam.Map(segment_summary, c.window)
            | f"Sum{split.title()}" >> beam.CombineGlobally(SumSummaries()))
    all_bad = bad_rows | "AllBadRows" >> beam.Flatten()
    quarantine_written = all_bad | "WriteQuarantine" >> WriteQuarantine(c.output, ticket)
    fixed = {
        "window": c.window,
        "quarantine_file": quarantine_path(c.output)[len(c.output.rstrip("/")) + 1:],
        "input_fingerprints": [fingerprint(f.path) | {"kind": f.kind} for f in inputs.files],
        "options": manifest_options(c),
        "package_version": _package_version(),
    }

    def write_manifest(_, rows_in_count, quarantined, stats_value, quarantine_files,
                       unterminated_lines, dead_channel_entries, **split_inputs):
        split_summaries = {s: split_inputs[f"summary_{s}"] for s in split_segments}
        written = sum(s["rows"] for s in split_summaries.values())
        check_row_accounting(rows_in_count, written, quarantined, c.max_bad_fraction)
        manifest = build_manifest(
            split_summaries=split_summaries,
            shards={s: split_inputs[f"shards_{s}"] for s in split_segments},
            stats=stats_value, rows_in=rows_in_count, quarantined=quarantined,
            unterminated=sorted(unterminated_lines),
            dead_channels=sorted(dead_channel_entries, key=dead_channel_order), **fixed)
        ticket.confirm(f"writing {record_spec.MANIFEST_NAME}")
        write_json(manifest_path(c.output), manifest)
        return manifest

    split_side_inputs = {f"summary_{s}": v for s, v in summaries.items()}
    split_side_inputs.update({f"shards_{s}": v for s, v in shards.items()})
    (pipeline
     | "ManifestTrigger" >> beam.Create([None])
     | "WriteManifest" >> beam.Map(
         write_manifest,
         AsSingleton(rows_in | "AllRowsIn" >> beam.Flatten()
                     | "CountRowsIn" >> beam.CombineGlobally(sum)),
         AsSingleton(all_bad | "CountBadRows" >> beam.combiners.Count.Globally()),
         AsSingleton(stats), AsList(quarantine_written),
         AsList(unterminated | "AllUnterminated" >> beam.Flatten()),
         AsList(dead_channels | "AllDeadChannels" >> beam.Flatten()), **split_side_inputs))
