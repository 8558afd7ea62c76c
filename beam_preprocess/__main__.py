"""`python -m beam_preprocess --train PATH --test PATH --output DIR [options] [Beam options]`."""
from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, TestOptions

from beam_preprocess.manifest import manifest_path, read_json
from beam_preprocess.options import PreprocessConfig, parse_args
from beam_preprocess.output_dir import prepare_output, remove_empty_temp_dirs
from beam_preprocess.pipeline import build_pipeline, resolve_inputs
from beam_preprocess.scaling import statistics_from_manifest
from beam_preprocess.spill import spill_directory


def build(argv: Sequence[str], spill_dir: Optional[str] = None
          ) -> tuple[beam.Pipeline, PreprocessConfig]:
    """Checks inputs and output, and builds the job (not yet run); parsed rows spill to
    `spill_dir` if given (run() decides, see spill.py)."""
    config, beam_args = parse_args(argv)
    fixed_stats = None
    if config.stats:
        fixed_stats = statistics_from_manifest(read_json(config.stats), config.stats)
    inputs = resolve_inputs(config, fixed_stats)
    prepare_output(config.output, config.overwrite)
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
    build_pipeline(pipeline, config, inputs, spill_dir)
    return pipeline, config


def run(argv: Sequence[str]) -> dict:
    """Runs the job to completion; returns the manifest it wrote ({} for a dry run)."""
    config, beam_args = parse_args(argv)
    with spill_directory(config.spill, config.spill_dir, beam_args) as spill_dir:
        pipeline, config = build(argv, spill_dir)
        pipeline.run().wait_until_finish()
    if pipeline.options.view_as(TestOptions).dry_run:
        return {}
    remove_empty_temp_dirs(config.output)
    return read_json(manifest_path(config.output))


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        manifest = run(sys.argv[1:] if argv is None else argv)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as err:
        print(f"beam_preprocess: error: {err}", file=sys.stderr)
        return 1
    if manifest:
        rows = manifest["rows"]
        print(f"wrote {rows['written']} rows ({rows['quarantined']} quarantined) in "
              + ", ".join(f"{s}: {v['records']} records" for s, v in manifest["splits"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
