"""An output directory is replaced whole or not at all.

Without --overwrite a run refuses an output that holds anything; with it, the old
output is deleted before the job starts.  The manifest is written last, so an
output without manifest.json is incomplete (a failed run) and readers refuse it.
"""
from __future__ import annotations

import os

from apache_beam.io.filesystems import FileSystems

from trainer.output_claim import is_claim


class OutputExistsError(FileExistsError):
    """The output directory already holds files and --overwrite was not given."""


def existing_files(output: str) -> list[str]:
    """The files under `output`, but for this job's own writer claim."""
    pattern = f"{output.rstrip('/')}/**"
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list
                  if not is_claim(m.path))


def prepare_output(output: str, overwrite: bool) -> None:
    """Refuses a used output, or deletes it whole when `overwrite`."""
    files = existing_files(output)
    if files and not overwrite:
        raise OutputExistsError(
            f"{output} already holds {len(files)} file(s) (e.g. {files[0]}); "
            "pass --overwrite to replace that output whole, or choose another --output")
    if files:
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
