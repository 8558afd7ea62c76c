"""An output directory is replaced whole or not at all, and only if it is ours.

Without --overwrite a run refuses an output that holds anything; with it, the old
output is deleted before the job starts, but only when every file in it is one this
command writes (OWN_FILES: manifest, shards, quarantine, Beam's temporary files): an
output that holds anything else, or that holds one of the job's inputs, is refused
before anything is touched.  The manifest is written last, so an output without
manifest.json is incomplete (a failed run) and readers refuse it.
"""
from __future__ import annotations

import os
import re
from typing import Callable, Iterable

from apache_beam.io.filesystems import FileSystems

from trainer.records import spec as record_spec
from trainer.shared.output_claim import is_claim
from trainer.shared.paths import holds

# The relative paths this command writes into its output (shards named by Beam's
# default template, -SSSSS-of-NNNNN), and its sinks' temporary folders.
OWN_FILES = re.compile(
    "|".join((re.escape(record_spec.MANIFEST_NAME),
              re.escape(f"{record_spec.QUARANTINE_PREFIX}.csv"),
              "(?:" + "|".join(record_spec.SPLITS) + r")/part-\d+-of-\d+"
              + re.escape(record_spec.SHARD_SUFFIX),
              r"(?:[^/]+/)*beam-temp-[^/]+/.*")))


class OutputExistsError(FileExistsError):
    """The output directory already holds files and --overwrite was not given."""


def existing_files(output: str) -> list[str]:
    """The files under `output`, but for this job's own writer claim."""
    pattern = f"{output.rstrip('/')}/**"
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list
                  if not is_claim(m.path))


def prepare_output(output: str, overwrite: bool, inputs: Iterable[str],
                   confirm_claim: Callable[[str], None]) -> None:
    """Refuses an output that holds one of `inputs` or (without `overwrite`) anything;
    with `overwrite`, deletes an earlier output of this command, after
    `confirm_claim(step)` (trainer.shared.output_claim) says the job still holds it."""
    for path in inputs:
        if holds(output, path):
            raise OutputExistsError(
                f"--output {output} holds this job's input {path}: choose an output "
                "folder that holds no input")
    files = existing_files(output)
    if files and not overwrite:
        raise OutputExistsError(
            f"{output} already holds {len(files)} file(s) (e.g. {files[0]}); "
            "pass --overwrite to replace that output whole, or choose another --output")
    root = output.rstrip("/") + "/"
    foreign = [f for f in files if not OWN_FILES.fullmatch(f[len(root):])]
    if foreign:
        raise OutputExistsError(
            f"--overwrite: {output} holds {len(foreign)} file(s) that are not a "
            f"beam_preprocess output (e.g. {foreign[0]}), so nothing was deleted; choose "
            "another --output, or empty it yourself")
    if files:
        confirm_claim("deleting the earlier output")
        FileSystems.delete(files)


def remove_empty_temp_dirs(output: str) -> None:
    """Removes the empty beam-temp-* directories Beam's file sinks leave on local disks."""
    if "://" in output or not os.path.isdir(output):
        return
    for root, dirs, _ in os.walk(output, topdown=False):
        for name in dirs:
            path = os.path.join(root, name)
            if name.startswith("beam-temp-") and not os.listdir(path):
                os.rmdir(path)
