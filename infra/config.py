"""CloudConfig: the one configuration file every launcher reads (e.g. infra/cloud.toml).

The file is TOML with one table per section below.  Every key is required and
no unknown key is accepted, so a typo is an error rather than a silent default.
Every value is checked for its type and, where Google Cloud restricts it (project
ids, bucket names, zones, machine names...), for its form, with an error that
names the file, the section and the key.
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from pathlib import Path
from typing import Any, Callable, Optional

Check = Callable[[Any], Optional[str]]  # returns what is wrong, or None
PLACEHOLDER = "your-project-id"  # what infra/cloud.toml holds where a project id goes


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or has a bad value."""


def _matches(pattern: str, what: str) -> Check:
    compiled = re.compile(pattern)

    def check(value: str) -> Optional[str]:
        return None if compiled.fullmatch(value) else f"expected {what}"
    return check


def _at_least(low: int) -> Check:
    return lambda value: None if value >= low else f"expected an integer >= {low}"


def _one_of(*choices: str) -> Check:
    return lambda value: None if value in choices else f"expected one of {choices}"


def _field(check: Optional[Check] = None) -> Any:
    return dataclasses.field(metadata={"check": check} if check else {})


_NAME = _matches(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?",
                 "a lowercase name: letters, digits and '-', starting with a letter")
_OBJECT_PATH = _matches(r"[^\s,;/][^\s,;]*[^\s,;/]|[^\s,;/]",
                        "an object path inside the bucket, no spaces, commas or ';', "
                        "no leading or trailing '/'")
_DURATION = _matches(r"(?=\d)(\d+d)?(\d+h)?(\d+m)?(\d+s)?",
                     "a duration such as 45m, 12h or 1d2h30m")
_TOKEN = _matches(r"[^\s,;]+", "a value without spaces, commas or ';'")


def _tokens(value: tuple[str, ...]) -> Optional[str]:
    bad = [item for item in value if _TOKEN(item)]
    return f"items without spaces, commas or ';' (bad: {bad})" if bad else None


@dataclasses.dataclass(frozen=True)
class ProjectSection:
    id: str = _field(_matches(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", "a Google Cloud project id"))
    region: str = _field(_matches(r"[a-z]+-[a-z]+[0-9]+", "a region such as us-central1"))
    zone: str = _field(_matches(r"[a-z]+-[a-z]+[0-9]+-[a-z]", "a zone such as us-central1-a"))
    resource_prefix: str = _field(_matches(r"[a-z][-a-z0-9]{0,19}",
                                           "a lowercase name of at most 20 characters"))


@dataclasses.dataclass(frozen=True)
class StorageSection:
    bucket: str = _field(_matches(r"[a-z0-9][-_a-z0-9]{1,61}[a-z0-9]", "a bucket name"))
    raw_train: str = _field(_OBJECT_PATH)
    raw_test: str = _field(_OBJECT_PATH)
    data: str = _field(_OBJECT_PATH)
    runs: str = _field(_OBJECT_PATH)
    tuning: str = _field(_OBJECT_PATH)
    temp: str = _field(_OBJECT_PATH)


@dataclasses.dataclass(frozen=True)
class UploadSection:
    train_csv: str = _field(_TOKEN)
    test_csv: str = _field(_TOKEN)


@dataclasses.dataclass(frozen=True)
class ImageSection:
    repository: str = _field(_NAME)
    name: str = _field(_matches(r"[a-z0-9]+([._-][a-z0-9]+)*", "an image name"))
    tag: str = _field(_matches(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", "a Docker tag"))
    builder: str = _field(_one_of("cloud-build", "docker"))
    build_timeout: str = _field(_DURATION)


@dataclasses.dataclass(frozen=True)
class DataflowSection:
    machine_type: str = _field(_NAME)
    max_workers: int = _field(_at_least(1))
    extra_args: tuple[str, ...] = _field(_tokens)


@dataclasses.dataclass(frozen=True)
class VmSection:
    image_family: str = _field(_NAME)
    image_project: str = _field(_NAME)
    boot_disk_gb: int = _field(_at_least(10))
    provisioning_model: str = _field(_one_of("STANDARD", "SPOT"))
    max_run_duration: str = _field(_DURATION)
    driver_timeout_s: int = _field(_at_least(1))


@dataclasses.dataclass(frozen=True)
class GpuSection:
    machine_type: str = _field(_NAME)
    accelerator_type: str = _field(_matches(r"nvidia-[-a-z0-9]+",
                                            "a Compute Engine GPU type such as nvidia-tesla-t4"))
    accelerator_count: int = _field(_at_least(1))


@dataclasses.dataclass(frozen=True)
class TrainSection:
    args: tuple[str, ...] = _field(_tokens)


@dataclasses.dataclass(frozen=True)
class TuneSection:
    workers: int = _field(_at_least(1))
    chief_machine_type: str = _field(_NAME)
    oracle_port: int = _field(lambda port: None if 1024 <= port <= 65535
                              else "expected a port in 1024..65535")
    algorithm: str = _field(_one_of("hyperband", "bayesian", "random"))
    max_trials: int = _field(_at_least(1))
    args: tuple[str, ...] = _field(_tokens)


@dataclasses.dataclass(frozen=True)
class CloudConfig:
    project: ProjectSection
    storage: StorageSection
    upload: UploadSection
    image: ImageSection
    dataflow: DataflowSection
    vm: VmSection
    gpu: GpuSection
    train: TrainSection
    tune: TuneSection

    def __post_init__(self) -> None:
        if not self.project.zone.startswith(self.project.region + "-"):
            raise ConfigError(f"[project] zone {self.project.zone!r} is not in "
                              f"region {self.project.region!r}")


def _typed(value: Any, kind: Any) -> Any:
    """`value` converted to `kind` (str, int or tuple[str, ...]), or raise TypeError."""
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    if typing.get_origin(kind) is tuple and isinstance(value, list) \
            and all(isinstance(item, str) for item in value):
        return tuple(value)
    names = {int: "an integer", str: "a string"}
    raise TypeError(f"expected {names.get(kind, 'a list of strings')}, "
                    f"got {type(value).__name__} {value!r}")


def _section(cls: type, table: Any, name: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}]: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    missing = sorted(set(fields) - set(table))
    unknown = sorted(set(table) - set(fields))
    if missing or unknown:
        raise ConfigError(f"[{name}]: missing keys {missing}, unknown keys {unknown}")
    values = {}
    for key, field in fields.items():
        try:
            values[key] = _typed(table[key], hints[key])
        except TypeError as error:
            raise ConfigError(f"[{name}] {key}: {error}") from None
        problem = field.metadata.get("check", lambda _: None)(values[key])
        if problem:
            raise ConfigError(f"[{name}] {key}: {problem}, got {table[key]!r}")
    return cls(**values)


def config_from_dict(document: dict[str, Any]) -> CloudConfig:
    """A validated CloudConfig from a parsed TOML document."""
    sections = {field.name: field.type for field in dataclasses.fields(CloudConfig)}
    hints = typing.get_type_hints(CloudConfig)
    missing = sorted(set(sections) - set(document))
    unknown = sorted(set(document) - set(sections))
    if missing or unknown:
        raise ConfigError(f"missing sections {missing}, unknown sections {unknown}")
    return CloudConfig(**{name: _section(hints[name], document[name], name)
                          for name in sections})


def placeholders(config: CloudConfig) -> list[str]:
    """Values that still hold the template's PLACEHOLDER, as "[section] key = 'value'"."""
    found = []
    for section in dataclasses.fields(config):
        table = getattr(config, section.name)
        for field in dataclasses.fields(table):
            value = getattr(table, field.name)
            if PLACEHOLDER in str(value):
                found.append(f"[{section.name}] {field.name} = {value!r}")
    return found


def load_config(path: str | Path) -> CloudConfig:
    """Read and validate the configuration file at `path`; errors name the file."""
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
        return config_from_dict(document)
    except (OSError, tomllib.TOMLDecodeError, ConfigError) as error:
        raise ConfigError(f"{path}: {error}") from None
