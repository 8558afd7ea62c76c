"""Validation of the launchers' configuration file: clear errors naming section and key."""
from __future__ import annotations

import copy
import tomllib

import pytest

from infra.config import ConfigError, config_from_dict, load_config
from infra.resources import REPO_ROOT

EXAMPLE = REPO_ROOT / "infra" / "cloud.toml"


def example_document() -> dict:
    with open(EXAMPLE, "rb") as handle:
        return tomllib.load(handle)


def with_value(section: str, key: str, value) -> dict:
    document = copy.deepcopy(example_document())
    document[section][key] = value
    return document


def test_the_example_is_valid():
    config = load_config(EXAMPLE)
    assert config.project.id == "your-project-id"
    assert config.gpu.accelerator_count == 1
    assert config.tune.args == () and config.dataflow.extra_args == ()


@pytest.mark.parametrize("section, key, value, message", [
    ("project", "id", "My_Project", "[project] id: expected a Google Cloud project id"),
    ("project", "zone", "uscentral", "[project] zone: expected a zone"),
    ("project", "resource_prefix", "Pilot", "[project] resource_prefix: expected a lowercase"),
    ("storage", "bucket", "B", "[storage] bucket: expected a bucket name"),
    ("storage", "data", "/data", "[storage] data: expected an object path"),
    ("storage", "runs", "my runs", "[storage] runs: expected an object path"),
    ("image", "builder", "kaniko", "[image] builder: expected one of ('cloud-build', 'docker')"),
    ("image", "tag", "", "[image] tag: expected a Docker tag"),
    ("dataflow", "max_workers", 0, "[dataflow] max_workers: expected an integer >= 1"),
    ("dataflow", "max_workers", "8", "[dataflow] max_workers: expected an integer, got str"),
    ("dataflow", "max_workers", True, "[dataflow] max_workers: expected an integer, got bool"),
    ("dataflow", "extra_args", "--x", "[dataflow] extra_args: expected a list of strings"),
    ("dataflow", "extra_args", ["--a=1,2"], "[dataflow] extra_args: items without spaces"),
    ("vm", "provisioning_model", "spot", "[vm] provisioning_model: expected one of"),
    ("vm", "max_run_duration", "12 hours", "[vm] max_run_duration: expected a duration"),
    ("vm", "max_run_duration", "", "[vm] max_run_duration: expected a duration"),
    ("gpu", "accelerator_type", "tesla-t4", "[gpu] accelerator_type: expected a Compute Engine"),
    ("gpu", "accelerator_count", 0, "[gpu] accelerator_count: expected an integer >= 1"),
    ("train", "args", ["--epochs", 3], "[train] args: expected a list of strings"),
    ("tune", "oracle_port", 80, "[tune] oracle_port: expected a port in 1024..65535"),
    ("tune", "algorithm", "grid", "[tune] algorithm: expected one of"),
    ("tune", "workers", 0, "[tune] workers: expected an integer >= 1"),
])
def test_bad_values_name_section_and_key(section, key, value, message):
    with pytest.raises(ConfigError) as error:
        config_from_dict(with_value(section, key, value))
    assert message in str(error.value)
    assert repr(value) in str(error.value)


def test_missing_and_unknown_keys_and_sections():
    document = example_document()
    del document["gpu"]["machine_type"]
    document["gpu"]["machine_typ"] = "n1-standard-8"
    with pytest.raises(ConfigError, match=r"\[gpu\]: missing keys \['machine_type'\], "
                                          r"unknown keys \['machine_typ'\]"):
        config_from_dict(document)
    document = example_document()
    del document["tune"]
    document["extra"] = {}
    with pytest.raises(ConfigError, match=r"missing sections \['tune'\], "
                                          r"unknown sections \['extra'\]"):
        config_from_dict(document)
    with pytest.raises(ConfigError, match=r"\[vm\]: expected a table"):
        config_from_dict({**example_document(), "vm": "x"})


def test_zone_must_be_in_the_region():
    with pytest.raises(ConfigError, match="zone 'europe-west4-a' is not in region 'us-central1'"):
        config_from_dict(with_value("project", "zone", "europe-west4-a"))


def test_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "none.toml"
    with pytest.raises(ConfigError, match=str(missing)):
        load_config(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("[project\nid = 1\n")
    with pytest.raises(ConfigError, match=f"{broken}: .*line 1"):
        load_config(broken)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(EXAMPLE.read_text().replace('workers = 2', 'workers = -2'))
    with pytest.raises(ConfigError, match=f"{wrong}: \\[tune\\] workers"):
        load_config(wrong)
