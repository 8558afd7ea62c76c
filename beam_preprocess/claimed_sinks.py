"""Beam's file sinks, made to confirm the job's writer claim before they commit.

A file sink writes temporary files, then, once on one worker, deletes the files its
output will replace (`pre_finalize`) and moves the new ones into place
(`finalize_write`).  These sinks first confirm (trainer.shared.output_claim.ClaimTicket) that
the job still holds its output's claim, so a job that was stopped, lost its claim
and resumed never replaces the output of the job that took over.  They subclass
Beam's own TFRecord and text sinks (private classes of the pinned Beam version;
tests/test_output_overwrite.py runs them), and are used as WriteToTFRecord and
WriteToText use theirs: `pcoll | beam.io.Write(sink)`.
"""
from __future__ import annotations

from apache_beam.io.textio import _TextSink
from apache_beam.io.tfrecordio import _TFRecordSink

from trainer.shared.output_claim import ClaimTicket


class _ConfirmsClaim:
    """Mixin: `pre_finalize` confirms the claim first."""

    ticket: ClaimTicket

    def pre_finalize(self, init_result, writer_results):
        self.ticket.confirm(f"moving {self.file_path_prefix.get()}* into place")
        return super().pre_finalize(init_result, writer_results)


class ClaimedTFRecordSink(_ConfirmsClaim, _TFRecordSink):
    """Beam's TFRecord sink (WriteToTFRecord's), confirming `ticket` before it commits."""

    def __init__(self, ticket: ClaimTicket, file_path_prefix: str, **sink_options):
        super().__init__(file_path_prefix, **sink_options)
        self.ticket = ticket


class ClaimedTextSink(_ConfirmsClaim, _TextSink):
    """Beam's text sink (WriteToText's), confirming `ticket` before it commits."""

    def __init__(self, ticket: ClaimTicket, file_path_prefix: str, **sink_options):
        super().__init__(file_path_prefix, **sink_options)
        self.ticket = ticket
