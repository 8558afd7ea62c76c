"""gs:// inputs and outputs through a local GCS emulator; the Dataflow job graph."""
from __future__ import annotations

import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_preprocess.__main__ import build, run
from beam_preprocess.options import parse_args
from beam_preprocess.output_reader import read_manifest, read_split
from beam_testdata import csv_lines, loft_frame, text_sorted, train_frame
from trainer.shared.output_claim import OutputClaim

SMALL = ["--window", "64", "--block-seconds", "2", "--carry-seconds", "1",
         "--valid-block-seconds", "1"]
COMPOSITES = ("ReadTrain", "ReadTest", "ChooseValidation", "ComputeStatistics",
              "GroupSessionBlocks", "BuildSegments", "BalanceValidation", "WriteTrain",
              "WriteValid", "WriteTest", "WriteQuarantine", "WriteManifest")


def _upload(url: str, lines: list[str]) -> None:
    with FileSystems.create(url) as f:
        f.write(("\n".join(lines) + "\n").encode())


def _inputs(gcs, prefix):
    train, test = gcs.url(f"{prefix}/train.csv"), gcs.url(f"{prefix}/test.csv")
    _upload(train, csv_lines(text_sorted(train_frame(crews=(1, 2), seconds=3))))
    _upload(test, csv_lines(loft_frame(crews=(1,), seconds=3)))
    return train, test


def test_direct_runner_reads_and_writes_gs_paths(gcs_emulator):
    train, test = _inputs(gcs_emulator, "direct/in")
    out = gcs_emulator.url("direct/out")
    run(["--runner", "DirectRunner", "--train", train, "--test", test, "--output", out, *SMALL])
    manifest = read_manifest(out)
    assert manifest["rows"]["in"] == manifest["rows"]["written"] > 0
    assert all(f["path"].startswith("gs://") for f in manifest["input_fingerprints"])
    ids = np.concatenate([s.ids[s.context_rows:] for s in read_split(out, "test", manifest)])
    assert len(ids) == len(np.unique(ids)) == manifest["splits"]["test"]["rows"]
    assert FileSystems.exists(f"{out}/quarantine/bad_rows.csv")


def test_dataflow_job_graph_is_built_without_submitting(gcs_emulator):
    train, test = _inputs(gcs_emulator, "dataflow/in")
    config, beam_args = parse_args([
        "--runner", "DataflowRunner", "--dry_run", "True", "--project", "pilotstate-test",
        "--region", "europe-west1", "--temp_location", gcs_emulator.url("dataflow/tmp"),
        "--setup_file", "./setup.py", "--train", train, "--test", test,
        "--output", gcs_emulator.url("dataflow/out"), *SMALL])
    with OutputClaim(config.output, "dataflow dry run") as claim:
        result = build(config, beam_args, claim).run()
    names = {t.unique_name for t in result.job.proto_pipeline.components.transforms.values()}
    for composite in COMPOSITES:
        assert composite in names, composite
    assert "ReadTrain/ReadCsvChunks/SpreadRanges" in names
    assert not FileSystems.exists(gcs_emulator.url("dataflow/out/manifest.json"))
