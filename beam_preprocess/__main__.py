"""`python -m beam_preprocess --train PATH --test PATH --output DIR [options] [Beam options]`.

Apache Beam is imported only once the arguments are parsed, so that --help answers at once.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Optional, Sequence

from beam_preprocess.options import PreprocessConfig, parse_args

LOGGER = logging.getLogger("beam_preprocess")


def build(config: PreprocessConfig, beam_args: Sequence[str], spill_dir: Optional[str] = None):
    """Checks inputs and output, and builds the job (not yet run) from parsed arguments
    (options.parse_args). Parsed rows spill to `spill_dir` if given (run() decides, see
    spill.py)."""
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_preprocess.manifest import read_json
    from beam_preprocess.output_dir import prepare_output
    from beam_preprocess.pipeline import build_pipeline, resolve_inputs
    from beam_preprocess.scaling import statistics_from_manifest

    fixed_stats = None
    if config.stats:
        if not FileSystems.exists(config.stats):
            raise FileNotFoundError(f"--stats {config.stats}: no such file (give the "
                                    "manifest.json of an earlier run with --train)")
        fixed_stats = statistics_from_manifest(read_json(config.stats), config.stats)
    inputs = resolve_inputs(config, fixed_stats)
    prepare_output(config.output, config.overwrite)
    pipeline = beam.Pipeline(options=PipelineOptions(list(beam_args)))
    build_pipeline(pipeline, config, inputs, spill_dir)
    return pipeline


def run(argv: Sequence[str]) -> dict:
    """Runs the job of a command line to completion; returns the manifest it wrote
    ({} for a dry run)."""
    return run_parsed(*parse_args(argv))


def run_parsed(config: PreprocessConfig, beam_args: Sequence[str]) -> dict:
    """run() with its arguments parsed (options.parse_args).

    The job holds its --output's writer claim (trainer/output_claim.py) throughout."""
    from apache_beam.options.pipeline_options import TestOptions

    from beam_preprocess import progress
    from beam_preprocess.manifest import manifest_path, read_json
    from beam_preprocess.output_dir import remove_empty_temp_dirs
    from beam_preprocess.spill import spill_directory
    from trainer.output_claim import OutputClaim

    with OutputClaim(config.output, "python -m beam_preprocess"):
        with spill_directory(config.spill, config.spill_dir, beam_args) as spill_dir:
            pipeline = build(config, beam_args, spill_dir)
            progress.reset()
            pipeline.run().wait_until_finish()
        if pipeline.options.view_as(TestOptions).dry_run:
            return {}
        remove_empty_temp_dirs(config.output)
        return read_json(manifest_path(config.output))


def warnings_of(manifest: dict) -> list[str]:
    """Warnings about the data that a person should see: unterminated inputs, dead channels."""
    from beam_preprocess.dead_channels import describe

    lines = [f"{u['file']}: the last line (line {u['line']}) has no line end, so the file "
             "may be cut short; that row is quarantined as suspect" for u in
             manifest.get("unterminated_files", ())]
    return lines + describe(manifest.get("dead_channels", ()))


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        config, beam_args = parse_args(argv)  # --help and bad options end here, before Beam's import
    except ValueError as err:
        print(f"beam_preprocess: error: {err}", file=sys.stderr)
        return 1
    from beam_preprocess import console, progress
    from beam_preprocess.manifest import RowAccountingError

    reported = (ValueError, FileNotFoundError, FileExistsError, RowAccountingError)
    console.configure_logging(config.verbose, reported)
    started = time.monotonic()
    try:
        manifest = run_parsed(config, beam_args)
    except reported + (RuntimeError,) as err:
        print(f"beam_preprocess: error: {err}", file=sys.stderr)
        return 1
    if manifest:
        for line in progress.totals():
            LOGGER.info(line)
        for line in warnings_of(manifest):
            LOGGER.warning(f"warning: {line}")
        rows = manifest["rows"]
        print(f"wrote {rows['written']} rows ({rows['quarantined']} quarantined) in "
              f"{time.monotonic() - started:.0f} s: "
              + ", ".join(f"{s}: {v['records']} records" for s, v in manifest["splits"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
