"""manifest.json: what was written, from what, how; written last as the commit marker."""
from __future__ import annotations

import datetime
import json
from typing import Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_preprocess.errors import RowAccountingError
from trainer.records import spec as record_spec




class SumSummaries(beam.CombineFn):
    """Adds up segment_summary dicts of one split."""

    def create_accumulator(self):
        return {"records": 0, "rows": 0, "windows": 0}

    def add_input(self, acc, summary):
        return self.merge_accumulators([acc, summary])

    def merge_accumulators(self, accs):
        total = self.create_accumulator()
        for acc in accs:
            for key, value in acc.items():
                if key == "ids":
                    total["ids"] = _merge_id_stats(total.get("ids"), value)
                elif key in total:
                    total[key] = total[key] + value
                else:
                    total[key] = np.array(value, copy=True) if isinstance(value, np.ndarray) else value
        return total

    def extract_output(self, acc):
        out = {k: v for k, v in acc.items()}
        for key in ("rows_per_class", "windows_per_class"):
            if key in out:
                out[key] = {c: int(n) for c, n in zip(record_spec.CLASSES, out[key])}
        return out


def _merge_id_stats(a: Optional[dict], b: dict) -> dict:
    if a is None:
        return dict(b)
    return {"count": a["count"] + b["count"], "min": min(a["min"], b["min"]),
            "max": max(a["max"], b["max"]), "sum": a["sum"] + b["sum"]}


def check_row_accounting(rows_in: int, written: int, quarantined: int,
                         max_bad_fraction: float) -> None:
    if rows_in != written + quarantined:
        raise RowAccountingError(
            f"rows in ({rows_in}) != rows written ({written}) + rows quarantined "
            f"({quarantined}): rows were lost or duplicated")
    if rows_in and quarantined / rows_in > max_bad_fraction:
        raise RowAccountingError(
            f"{quarantined} of {rows_in} rows ({quarantined / rows_in:.4%}) are bad, more "
            f"than --max-bad-fraction {max_bad_fraction}; see the quarantine file")
    if rows_in == quarantined:
        raise RowAccountingError(f"all {rows_in} input rows are bad; nothing was written")


def build_manifest(*, window: int, split_summaries: dict, shards: dict, stats: dict,
                   rows_in: int, quarantined: int, quarantine_file: str,
                   input_fingerprints: list, options: dict, package_version: str,
                   unterminated: Sequence[tuple[str, int]] = (),
                   dead_channels: Sequence[dict] = (),
                   extra: Optional[dict] = None) -> dict:
    """The manifest.  `unterminated`: (file, line) of each input's last line that
    has no line end (quarantined, counted in rows.suspect); `dead_channels`: the
    dead_channels module's entries."""
    splits = {}
    for split, summary in split_summaries.items():
        entry = dict(summary)
        entry["shards"] = sorted(shards.get(split, []))
        splits[split] = entry
    written = sum(s["rows"] for s in split_summaries.values())
    manifest = {
        "schema_version": record_spec.SCHEMA_VERSION,
        "channels": list(record_spec.CHANNELS),
        "classes": list(record_spec.CLASSES),
        "window": window,
        "sample_rate_hz": record_spec.SAMPLE_RATE_HZ,
        "splits": splits,
        "stats": stats,
        "rows": {"in": rows_in, "written": written, "quarantined": quarantined,
                 "suspect": len(unterminated)},
        "unterminated_files": [{"file": f, "line": line} for f, line in unterminated],
        "dead_channels": list(dead_channels),
        "quarantine_file": quarantine_file,
        "input_fingerprints": input_fingerprints,
        "options": options,
        "package_version": package_version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    manifest.update(extra or {})
    return manifest


def manifest_path(output: str) -> str:
    return f"{output.rstrip('/')}/{record_spec.MANIFEST_NAME}"


def write_json(path: str, obj: dict) -> None:
    with FileSystems.create(path, mime_type="application/json") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True).encode())


def read_json(path: str) -> dict:
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode())
