"""One writer per output directory: a claim, WRITER.json, held while a job writes.

`python -m beam_preprocess` (--output), `python -m trainer train` (--job-dir) and
`python -m tuning search` (--tuner-dir, the chief) take a claim on their output
directory before touching it, and a second job that finds a live claim fails at
once, naming the holder.  The claim is created only if absent: on a local disk
with O_CREAT|O_EXCL, on gs:// with a generation-conditioned upload
(ifGenerationMatch=0).  Every later change of it (heartbeat, take-over, release)
is conditioned on its content (local, under flock(2) of the directory) or its
generation (gs://), so two jobs can never both believe they hold it.

The holder rewrites its heartbeat every HEARTBEAT_SECONDS.  A claim is stale, and
the next job takes it over with a warning, when its holder ran on this machine
(same host name and pid namespace) and that pid is gone, or when its heartbeat is
older than STALE_AFTER_SECONDS (a holder on another machine that died).  A holder
whose claim was taken over (its heartbeat stalled for that long, e.g. the job was
stopped) learns it at its next heartbeat and fails at the end with ClaimLostError, as
its output may then mix two jobs.  Before every destructive or committing step
(deleting an old output, moving shards into place, writing a manifest, a checkpoint,
an export, LATEST) the holder calls `OutputClaim.confirm` (in its own process) or
`ClaimTicket.confirm` (a step on another machine, e.g. a Dataflow worker): either
raises ClaimLostError unless the claim is still this job's, so a job that resumes
after losing its claim stops before it touches its successor's output.  The claim
is released (deleted) when the job ends, whether it succeeded or failed.

This module lives in trainer/shared/ because the trainer image has no Apache Beam while
beam_preprocess already imports trainer (trainer.records); it imports neither Beam nor
TensorFlow.  gs:// uses google-cloud-storage, a dependency of the trainer too
(setup.py), as tf.io.gfile has no conditional create.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import logging
import os
import posixpath
import socket
import threading
import uuid
from typing import Any, Iterator, Optional, Protocol

CLAIM_NAME = "WRITER.json"
HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 180.0
_ATTEMPTS = 5   # create / read / take over, when the claim changes between the steps

log = logging.getLogger(__name__)


class OutputClaimedError(FileExistsError):
    """Another live job holds the output directory."""


class ClaimLostError(RuntimeError):
    """This job's claim was taken over while it ran (its heartbeat had stalled)."""


def _lost_message(directory: str, taker: str, step: str) -> str:
    return (f"{directory}: this job's claim was taken over by {taker} while this job was "
            f"stalled, so it stops before {step} and leaves that job's output alone; "
            "rerun it when that job has ended")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def pid_running(pid: int) -> bool:
    """True unless `pid` is gone (or a zombie) on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a claim; the content of WRITER.json."""
    job: str             # the command, e.g. "python -m trainer train"
    claim_id: str        # unique per claim; logged by the holder when it claims
    host: str
    pid: int
    pid_namespace: str
    started: str         # ISO 8601, UTC
    heartbeat: str       # ISO 8601, UTC

    @classmethod
    def this_process(cls, job: str) -> "Holder":
        now = _now().isoformat(timespec="microseconds")
        return cls(job=job, claim_id=uuid.uuid4().hex[:12], host=socket.gethostname(),
                   pid=os.getpid(), pid_namespace=_pid_namespace(), started=now,
                   heartbeat=now)

    @classmethod
    def parse(cls, body: bytes) -> Optional["Holder"]:
        """The holder written in `body`, or None if it is not a claim (a torn write)."""
        try:
            holder = cls(**json.loads(body))
            holder.silent_seconds()   # a readable heartbeat
        except (ValueError, TypeError):
            return None
        return holder

    def to_bytes(self) -> bytes:
        return (json.dumps(dataclasses.asdict(self), indent=2) + "\n").encode()

    def beat(self) -> "Holder":
        return dataclasses.replace(self, heartbeat=_now().isoformat(timespec="microseconds"))

    def silent_seconds(self) -> float:
        return (_now() - datetime.datetime.fromisoformat(self.heartbeat)).total_seconds()

    def on_this_machine(self) -> bool:
        return self.host == socket.gethostname() and self.pid_namespace == _pid_namespace()

    def why_stale(self, stale_after: float) -> Optional[str]:
        """Why this claim may be taken over, or None while its holder may be alive."""
        if self.on_this_machine() and not pid_running(self.pid):
            return f"pid {self.pid} is gone"
        if self.silent_seconds() > stale_after:
            return f"its heartbeat is over {stale_after:g} s old"
        return None

    def describe(self) -> str:
        return (f"{self.job} (claim {self.claim_id}) on host {self.host}, pid {self.pid}, "
                f"started {self.started[:19]}Z, last heartbeat {self.silent_seconds():.0f} s ago")


Token = Any   # what a conditional change must match: the content (local) or generation (gs://)


class _Store(Protocol):
    """The claim file or object; every change is conditional."""
    path: str

    def create(self, body: bytes) -> Optional[Token]: ...            # None: it exists
    def read(self) -> Optional[tuple[bytes, Token]]: ...             # None: it is absent
    def replace(self, body: bytes, token: Token) -> Optional[Token]: ...  # None: changed
    def delete(self, token: Token) -> bool: ...                      # False: changed


class _LocalStore:
    """WRITER.json on a local (or NFS) disk: O_EXCL create; changes under flock(2)
    of the directory, conditioned on the content last written.  A directory that
    the claim created is removed with it if the job left it empty."""

    def __init__(self, directory: str):
        self.directory, self.path = directory, os.path.join(directory, CLAIM_NAME)
        self._creates_directory = not os.path.isdir(directory)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> Optional[bytes]:
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _write(self, body: bytes, flags: int) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | flags, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(body)

    def create(self, body: bytes) -> Optional[Token]:
        with self._locked():
            try:
                self._write(body, os.O_EXCL)
            except (FileExistsError, FileNotFoundError):   # (removed by its last claim)
                return None
        return body

    def read(self) -> Optional[tuple[bytes, Token]]:
        with self._locked():
            body = self._read()
        return None if body is None else (body, body)

    def replace(self, body: bytes, token: Token) -> Optional[Token]:
        with self._locked():
            if self._read() != token:
                return None
            self._write(body, os.O_TRUNC)
        return body

    def delete(self, token: Token) -> bool:
        with self._locked():
            if self._read() != token:
                return False
            os.remove(self.path)
            if self._creates_directory:
                with contextlib.suppress(OSError):   # not empty: the job wrote into it
                    os.rmdir(self.directory)
        return True


class _GcsStore:
    """WRITER.json on gs://: every write conditioned on the object's generation."""

    def __init__(self, directory: str):
        from google.cloud import storage

        bucket, _, prefix = directory[len("gs://"):].partition("/")
        name = posixpath.join(prefix.strip("/"), CLAIM_NAME) if prefix.strip("/") else CLAIM_NAME
        self.path = f"gs://{bucket}/{name}"
        self._bucket, self._name = storage.Client().bucket(bucket), name

    def _upload(self, body: bytes, generation: int) -> Optional[Token]:
        from google.api_core.exceptions import PreconditionFailed

        blob = self._bucket.blob(self._name)
        try:
            blob.upload_from_string(body, content_type="application/json",
                                    if_generation_match=generation)
        except PreconditionFailed:
            return None
        return blob.generation

    def create(self, body: bytes) -> Optional[Token]:
        return self._upload(body, 0)

    def read(self) -> Optional[tuple[bytes, Token]]:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        for _ in range(_ATTEMPTS):
            blob = self._bucket.get_blob(self._name)
            if blob is None:
                return None
            generation = blob.generation   # (a download resets it from response headers)
            try:
                return blob.download_as_bytes(if_generation_match=generation), generation
            except (NotFound, PreconditionFailed):
                continue   # replaced or deleted between the two requests
        return None

    def replace(self, body: bytes, token: Token) -> Optional[Token]:
        return self._upload(body, token)

    def delete(self, token: Token) -> bool:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        try:
            self._bucket.blob(self._name).delete(if_generation_match=token)
        except (NotFound, PreconditionFailed):
            return False
        return True


def _store(directory: str) -> _Store:
    if directory.startswith("gs://"):
        return _GcsStore(directory)
    if "://" in directory:
        raise ValueError(f"{directory}: only local and gs:// output directories are supported")
    return _LocalStore(directory)


@dataclasses.dataclass(frozen=True)
class ClaimTicket:
    """What a step running in another process needs to check that its job still holds
    the claim (picklable; reads the claim, so it costs one small read)."""
    directory: str
    claim_id: str

    def confirm(self, step: str) -> None:
        """Raises ClaimLostError unless the claim is still this job's; `step` names what
        the caller is about to do, e.g. "writing manifest.json"."""
        current = _store(self.directory).read()
        holder = Holder.parse(current[0]) if current else None
        if holder is None or holder.claim_id != self.claim_id:
            raise ClaimLostError(_lost_message(self.directory, _describe(holder), step))


def _describe(holder: Optional[Holder]) -> str:
    return holder.describe() if holder else "no job (the claim was deleted)"


def is_claim(path: str) -> bool:
    """True for the claim file itself (which an output's own listing must skip)."""
    return posixpath.basename(path.rstrip("/")) == CLAIM_NAME


class OutputClaim:
    """Holds `directory` for this process while the `with` block runs (see the module doc)."""

    def __init__(self, directory: str, job: str, heartbeat_seconds: float = HEARTBEAT_SECONDS,
                 stale_after_seconds: float = STALE_AFTER_SECONDS):
        self.directory, self.job = directory, job
        self.heartbeat_seconds, self.stale_after = heartbeat_seconds, stale_after_seconds
        self._store = _store(directory)
        self._holder = Holder.this_process(job)
        self._token: Token = None
        self._lost_to: Optional[str] = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beating: Optional[threading.Thread] = None

    @property
    def path(self) -> str:
        return self._store.path

    @property
    def ticket(self) -> ClaimTicket:
        """For steps in other processes (Beam workers) to confirm the claim."""
        return ClaimTicket(self.directory, self._holder.claim_id)

    def confirm(self, step: str) -> None:
        """Refreshes the heartbeat and raises ClaimLostError unless the claim is still
        this job's; call it before every destructive or committing step."""
        with self._lock:
            if self._lost_to is None:
                self._beat()
            if self._lost_to is not None:
                raise ClaimLostError(_lost_message(self.directory, self._lost_to, step))

    def __enter__(self) -> "OutputClaim":
        self._token = self._acquire()
        log.info("%s: claimed for %s (claim %s)", self.path, self.job, self._holder.claim_id)
        self._beating = threading.Thread(target=self._beat_until_stopped, daemon=True,
                                         name=f"claim-heartbeat {self.path}")
        self._beating.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        self._beating.join()
        with self._lock:
            if self._lost_to is None and not self._store.delete(self._token):
                self._lose_to(self._current_holder()[0])
        if self._lost_to is not None and exc_type is None:
            raise ClaimLostError(
                f"{self.directory}: this job's claim {self.path} was taken over by "
                f"{self._lost_to} while it ran, so the output may mix two jobs: rerun it "
                "when that job has ended (beam_preprocess: with --overwrite)")

    def _acquire(self) -> Token:
        ours = self._holder.to_bytes()
        for _ in range(_ATTEMPTS):
            token = self._store.create(ours)
            if token is not None:
                return token
            holder, token = self._current_holder()
            if token is None:
                continue   # released meanwhile
            if holder is not None and holder.claim_id == self._holder.claim_id:
                return token   # our own create, retried after a lost response
            why = "it is unreadable" if holder is None else holder.why_stale(self.stale_after)
            if why is None:
                raise OutputClaimedError(
                    f"{self.directory} is being written by another job: {holder.describe()}.\n"
                    f"Wait for it to end or choose another directory (a dead job's claim, "
                    f"{self.path}, is taken over once its heartbeat is {self.stale_after:.0f} s "
                    "old, or at once on its own machine).")
            token = self._store.replace(ours, token)
            if token is not None:
                log.warning("%s: took over the claim of %s: %s", self.path,
                            "an unknown job" if holder is None else holder.describe(), why)
                return token
        raise OutputClaimedError(f"{self.directory}: its claim {self.path} changed "
                                 f"{_ATTEMPTS} times while this job tried to take it; retry")

    def _current_holder(self) -> tuple[Optional[Holder], Token]:
        current = self._store.read()
        return (Holder.parse(current[0]), current[1]) if current else (None, None)

    def _lose_to(self, holder: Optional[Holder]) -> None:
        self._lost_to = _describe(holder)

    def _beat_until_stopped(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            with self._lock:
                try:
                    self._beat()
                except Exception as err:  # noqa: BLE001  (a failed beat is retried next time)
                    log.warning("%s: heartbeat failed (%s); retrying in %.0f s", self.path,
                                err, self.heartbeat_seconds)
                if self._lost_to is not None:
                    log.error("%s: this job's claim was taken over by %s; it will fail at "
                              "the end", self.path, self._lost_to)
                    return

    def _beat(self) -> None:
        beaten = self._holder.beat()
        token = self._store.replace(beaten.to_bytes(), self._token)
        if token is None:
            holder, token = self._current_holder()
            if holder != beaten:   # else our own write, retried after a lost response
                self._lose_to(holder)
                return
        self._holder, self._token = beaten, token
