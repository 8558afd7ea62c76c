"""`python -m beam_preprocess --train PATH --test PATH --output DIR [options] [Beam options]`.

Apache Beam is imported only once the arguments are parsed, so that --help answers at once.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Optional, Sequence

from beam_preprocess.options import PreprocessConfig, parse_args

if TYPE_CHECKING:
    from trainer.shared.output_claim import OutputClaim

LOGGER = logging.getLogger("beam_preprocess")


def build(config: PreprocessConfig, beam_args: Sequence[str], claim: "OutputClaim",
          spill_dir: Optional[str] = None):
    """Checks inputs and output, and builds the job (not yet run) from parsed arguments
    (options.parse_args), for a job that holds `claim` on its output (confirmed before
    every destructive step).  Parsed rows spill to `spill_dir` if given (run() decides,
    see spill.py)."""
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
        source = f"--stats {config.stats}"
        try:
            manifest = read_json(config.stats)
        except ValueError as err:  # not JSON, or not UTF-8
            raise ValueError(f"{source}: not a readable manifest.json ({err}); give the "
                             "manifest.json of an earlier run with --train") from None
        if not isinstance(manifest, dict):
            raise ValueError(f"{source}: not a manifest (it holds a JSON "
                             f"{type(manifest).__name__}); give the manifest.json of an "
                             "earlier run with --train")
        fixed_stats = statistics_from_manifest(manifest, source)
    inputs = resolve_inputs(config, fixed_stats)
    job_inputs = [f.path for f in inputs.files] + ([config.stats] if config.stats else [])
    prepare_output(config.output, config.overwrite, job_inputs, claim.confirm)
    pipeline = beam.Pipeline(options=PipelineOptions(list(beam_args)))
    build_pipeline(pipeline, config, inputs, claim.ticket, spill_dir)
    return pipeline


def run(argv: Sequence[str]) -> dict:
    """Runs the job of a command line to completion; returns the manifest it wrote
    ({} for a dry run)."""
    return run_parsed(*parse_args(argv))


def run_parsed(config: PreprocessConfig, beam_args: Sequence[str]) -> dict:
    """run() with its arguments parsed (options.parse_args).

    The job holds its --output's writer claim (trainer/shared/output_claim.py) throughout,
    taken before Beam is imported, so that a second job is refused at once."""
    from trainer.shared.gcs_access import check_gcs_access
    from trainer.shared.output_claim import OutputClaim

    check_gcs_access({"--train": config.train, "--test": config.test,
                      "--output": config.output, "--stats": config.stats})
    with OutputClaim(config.output, "python -m beam_preprocess") as claim:
        from apache_beam.options.pipeline_options import TestOptions

        from beam_preprocess import progress
        from beam_preprocess.manifest import manifest_path, read_json
        from beam_preprocess.output_dir import remove_empty_temp_dirs
        from beam_preprocess.spill import spill_directory

        with spill_directory(config.spill, config.spill_dir, beam_args) as spill_dir:
            pipeline = build(config, beam_args, claim, spill_dir)
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
    from beam_preprocess.errors import REPORTED

    console.configure_logging(config.verbose, REPORTED)
    started = time.monotonic()
    try:
        manifest = run_parsed(config, beam_args)
    except REPORTED + (RuntimeError,) as err:
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
