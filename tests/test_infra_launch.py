"""The launchers' dry-run output: the exact commands, all derived from the config."""
from __future__ import annotations

import copy
import re
import shlex
import subprocess
import sys
import tomllib

import pytest

from infra.cli import main
from infra.config import config_from_dict
from infra.container_args import BENCH_SCRIPT
from infra.plans import ALL_STEPS, DESCRIPTIONS, plan_commands
from infra.resources import REPO_ROOT
from infra.vms import STARTUP_SCRIPT, ContainerVm, metadata_flag

EXAMPLE = REPO_ROOT / "infra" / "cloud.toml"
RUN_ID = "20250131-235959"


def example_document() -> dict:
    with open(EXAMPLE, "rb") as handle:
        return tomllib.load(handle)


def other_document() -> dict:
    """A config in which every value differs from the example's."""
    document = copy.deepcopy(example_document())
    document["project"].update(id="other-proj-42", region="europe-west4",
                               zone="europe-west4-b", resource_prefix="ps2")
    document["storage"].update(bucket="other-bucket-9", raw_train="in/tr.csv",
                               raw_test="in/te.csv", data="seg/v2", runs="out/jobs",
                               tuning="out/tune", temp="scratch")
    document["upload"].update(train_csv="/home/k/tr.csv", test_csv="/home/k/te.csv")
    document["image"].update(repository="ml-images", name="pst", tag="v9",
                             builder="docker", build_timeout="2h")
    document["dataflow"].update(machine_type="c3-standard-8", max_workers=33,
                                extra_args=["--num_workers=3"])
    document["vm"].update(image_family="my-family", image_project="my-images",
                          boot_disk_gb=321, provisioning_model="SPOT",
                          max_run_duration="1d2h", driver_timeout_s=77)
    document["gpu"].update(machine_type="g2-standard-24", accelerator_type="nvidia-l4",
                           accelerator_count=2)
    document["train"].update(args=["--epochs", "3"])
    document["tune"].update(workers=3, chief_machine_type="n2-standard-2", oracle_port=9123,
                            algorithm="bayesian", max_trials=7, args=["--seed", "5"])
    return document


def commands(name: str, document: dict | None = None) -> list[list[str]]:
    return plan_commands(name, config_from_dict(document or example_document()), RUN_ID)


def flag_value(argv: list[str], flag: str) -> str:
    """The value of `--flag=value` in argv (exactly one occurrence)."""
    values = [arg.split("=", 1)[1] for arg in argv if arg.startswith(flag + "=")]
    assert len(values) == 1, (flag, argv)
    return values[0]


def parsed_metadata(argv: list[str]) -> dict[str, str]:
    """The --metadata entries, split the way gcloud splits `^;^k=v;k=v`."""
    value = flag_value(argv, "--metadata")
    assert value.startswith("^;^")
    return dict(entry.split("=", 1) for entry in value[3:].split(";"))


def test_every_command_prints_one_shell_quoted_line_per_command(capsys):
    for name in DESCRIPTIONS:
        assert main([name, "--config", str(EXAMPLE), "--run-id", RUN_ID, "--dry-run"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [shlex.split(line) for line in lines] == commands(name), name


def test_all_is_the_steps_in_order():
    assert commands("all") == [argv for step in ALL_STEPS for argv in commands(step)]
    assert ALL_STEPS.index("build") < ALL_STEPS.index("train")
    assert ALL_STEPS.index("preprocess") < ALL_STEPS.index("train")


def test_setup_commands():
    (services,) = commands("services")
    assert services[:3] == ["gcloud", "services", "enable"]
    assert "dataflow.googleapis.com" in services and "--project=your-project-id" in services
    assert commands("bucket") == [[
        "gcloud", "storage", "buckets", "create", "gs://your-project-id-pilotstate",
        "--project=your-project-id", "--location=us-central1",
        "--uniform-bucket-level-access"]]
    assert commands("registry") == [[
        "gcloud", "artifacts", "repositories", "create", "pilotstate",
        "--repository-format=docker", "--location=us-central1", "--project=your-project-id"]]
    assert commands("upload") == [
        ["gcloud", "storage", "cp", "train.csv", "gs://your-project-id-pilotstate/raw/train.csv"],
        ["gcloud", "storage", "cp", "test.csv", "gs://your-project-id-pilotstate/raw/test.csv"]]


def test_build_pushes_to_the_artifact_registry_path_from_the_config():
    image = "us-central1-docker.pkg.dev/your-project-id/pilotstate/trainer:0.1.0"
    assert commands("build") == [[
        "gcloud", "builds", "submit", str(REPO_ROOT), f"--tag={image}",
        "--ignore-file=.dockerignore",
        "--project=your-project-id", "--region=us-central1", "--timeout=45m"]]
    assert (REPO_ROOT / ".dockerignore").is_file()
    document = other_document()
    other = "europe-west4-docker.pkg.dev/other-proj-42/ml-images/pst:v9"
    assert commands("build", document) == [
        ["gcloud", "auth", "configure-docker", "europe-west4-docker.pkg.dev", "--quiet"],
        ["docker", "build", "--platform=linux/amd64", f"--tag={other}", str(REPO_ROOT)],
        ["docker", "push", other]]
    assert (REPO_ROOT / "setup.py").is_file()


def test_preprocess_submits_to_dataflow_with_the_setup_file():
    (argv,) = commands("preprocess")
    assert argv[:3] == [sys.executable, "-m", "beam_preprocess"]
    assert argv[3:9] == ["--train", "gs://your-project-id-pilotstate/raw/train.csv",
                         "--test", "gs://your-project-id-pilotstate/raw/test.csv",
                         "--output", "gs://your-project-id-pilotstate/data"]
    assert "--runner=DataflowRunner" in argv
    assert flag_value(argv, "--setup_file") == str(REPO_ROOT / "setup.py")
    assert flag_value(argv, "--job_name") == f"pilotstate-preprocess-{RUN_ID}"


def test_preprocess_options_are_what_beam_reads():
    """The Beam options of the command, parsed by Beam itself."""
    options_module = pytest.importorskip("apache_beam.options.pipeline_options")
    (argv,) = commands("preprocess", other_document())
    options = options_module.PipelineOptions(argv[9:])
    cloud = options.view_as(options_module.GoogleCloudOptions)
    workers = options.view_as(options_module.WorkerOptions)
    setup = options.view_as(options_module.SetupOptions)
    assert options.view_as(options_module.StandardOptions).runner == "DataflowRunner"
    assert (cloud.project, cloud.region) == ("other-proj-42", "europe-west4")
    assert cloud.job_name == f"ps2-preprocess-{RUN_ID}"
    assert cloud.temp_location == "gs://other-bucket-9/scratch/dataflow-temp"
    assert cloud.staging_location == "gs://other-bucket-9/scratch/dataflow-staging"
    assert (workers.machine_type, workers.max_num_workers, workers.num_workers) == \
        ("c3-standard-8", 33, 3)
    assert setup.setup_file == str(REPO_ROOT / "setup.py")


def test_train_vm_runs_the_image_on_all_gpus_and_deletes_itself():
    (argv,) = commands("train")
    assert argv[:5] == ["gcloud", "compute", "instances", "create", f"pilotstate-train-{RUN_ID}"]
    assert flag_value(argv, "--accelerator") == "type=nvidia-tesla-t4,count=1"
    assert flag_value(argv, "--maintenance-policy") == "TERMINATE"
    assert flag_value(argv, "--machine-type") == "n1-standard-8"
    assert flag_value(argv, "--zone") == "us-central1-a"
    assert flag_value(argv, "--max-run-duration") == "12h"
    assert flag_value(argv, "--instance-termination-action") == "DELETE"
    assert flag_value(argv, "--scopes") == "cloud-platform"
    assert flag_value(argv, "--metadata-from-file") == f"startup-script={STARTUP_SCRIPT}"
    assert STARTUP_SCRIPT.is_file()
    assert parsed_metadata(argv) == {
        "install-nvidia-driver": "True",
        "pilotstate-image": "us-central1-docker.pkg.dev/your-project-id/pilotstate/trainer:0.1.0",
        "pilotstate-entrypoint": "",
        "pilotstate-args": "train --data gs://your-project-id-pilotstate/data "
                           f"--job-dir gs://your-project-id-pilotstate/runs/{RUN_ID}",
        "pilotstate-env": "",
        "pilotstate-gpus": "all",
        "pilotstate-driver-timeout": "900",
    }


def test_bench_gpu_vm_runs_the_benchmark_in_the_image_and_writes_to_the_bucket():
    (argv,) = commands("bench-gpu", other_document())
    assert argv[:5] == ["gcloud", "compute", "instances", "create", f"ps2-bench-gpu-{RUN_ID}"]
    assert flag_value(argv, "--accelerator") == "type=nvidia-l4,count=2"
    assert flag_value(argv, "--machine-type") == "g2-standard-24"
    assert flag_value(argv, "--instance-termination-action") == "DELETE"
    assert flag_value(argv, "--max-run-duration") == "1d2h"
    metadata = parsed_metadata(argv)
    assert metadata["pilotstate-entrypoint"] == "python"
    assert metadata["pilotstate-args"] == (
        f"/opt/pilotstate/bench/bench_trainer.py --json gs://other-bucket-9/out/jobs/{RUN_ID}"
        "/bench-gpu.json")
    assert metadata["pilotstate-gpus"] == "all"
    assert "COPY bench/bench_trainer.py bench/provenance.py tests/trainer_fixtures.py bench/" in \
        (REPO_ROOT / "Dockerfile").read_text()


def test_startup_script_has_the_gpu_run_and_the_self_delete_trap():
    script = STARTUP_SCRIPT.read_text()
    assert "trap delete_this_vm EXIT" in script
    assert "gcloud --quiet compute instances delete" in script
    assert "run_flags+=(--gpus all)" in script


def test_tune_chief_and_workers_have_distinct_ids_and_find_the_chief():
    chief, *workers = commands("tune")
    assert len(workers) == 2
    chief_name = f"pilotstate-tune-chief-{RUN_ID}"
    assert chief[4] == chief_name
    assert [argv[4] for argv in workers] == [f"pilotstate-tune-tuner{i}-{RUN_ID}" for i in (0, 1)]
    assert not any(arg.startswith("--accelerator") for arg in chief)
    assert flag_value(chief, "--machine-type") == "e2-standard-4"
    ids = []
    for argv in (chief, *workers):
        metadata = parsed_metadata(argv)
        env = dict(pair.split("=", 1) for pair in metadata["pilotstate-env"].split())
        ids.append(env["KERASTUNER_TUNER_ID"])
        assert env["KERASTUNER_ORACLE_PORT"] == "8000"
        assert metadata["pilotstate-entrypoint"] == "python"
        assert metadata["pilotstate-args"] == (
            "-m tuning search --data gs://your-project-id-pilotstate/data "
            f"--tuner-dir gs://your-project-id-pilotstate/tuning/{RUN_ID} "
            "--algorithm hyperband --max-trials 20")
        assert flag_value(argv, "--instance-termination-action") == "DELETE"
        if argv is chief:
            assert env["KERASTUNER_ORACLE_IP"] == "0.0.0.0"
            assert metadata["pilotstate-gpus"] == "none"
        else:
            assert env["KERASTUNER_ORACLE_IP"] == \
                f"{chief_name}.us-central1-a.c.your-project-id.internal"
            assert metadata["pilotstate-gpus"] == "all"
            assert flag_value(argv, "--accelerator") == "type=nvidia-tesla-t4,count=1"
    assert ids == ["chief", "tuner0", "tuner1"]


def test_vertex_job_runs_the_image_with_the_gpus_and_gs_paths():
    assert commands("vertex") == [[
        "gcloud", "ai", "custom-jobs", "create", "--project=your-project-id",
        "--region=us-central1", f"--display-name=pilotstate-train-{RUN_ID}",
        "--worker-pool-spec=machine-type=n1-standard-8,replica-count=1,"
        "accelerator-type=NVIDIA_TESLA_T4,accelerator-count=1,container-image-uri="
        "us-central1-docker.pkg.dev/your-project-id/pilotstate/trainer:0.1.0",
        "--args=train,--data,gs://your-project-id-pilotstate/data,"
        f"--job-dir,gs://your-project-id-pilotstate/runs/{RUN_ID}"]]


def occurs(value: str, text: str) -> bool:
    """`value` is in `text` as a whole word, path segment or flag value (maybe with a unit)."""
    return re.search(rf"(?<![a-z0-9]){re.escape(value)}(?![a-z0-9])", text) is not None


def test_no_value_is_hard_coded_the_output_follows_the_config():
    example, other = example_document(), other_document()
    names = [name for name in DESCRIPTIONS if name != "all"]
    example_text = "\n".join(shlex.join(argv) for name in names for argv in commands(name))
    cloud_build = copy.deepcopy(other)
    cloud_build["image"]["builder"] = "cloud-build"  # uses build_timeout, "docker" does not
    other_text = "\n".join(shlex.join(argv) for argv in [
        *(argv for name in names for argv in commands(name, other)),
        *commands("build", cloud_build)])
    # Without the fixed names (flags, the metadata keys the startup script reads,
    # the repository's path, the tuner's module, the benchmark's path in the image),
    # only values are left.
    values_text = (other_text.replace(str(REPO_ROOT), "").replace("-m tuning search", "")
                   .replace(BENCH_SCRIPT, ""))
    values_text = re.sub(r"--[a-z_-]+|pilotstate-[a-z-]+=", "", values_text)
    for section, table in example.items():
        for key, value in table.items():
            new = other[section][key]
            for old_item, new_item in zip(value if isinstance(value, list) else [value],
                                          new if isinstance(new, list) else [new]):
                assert occurs(str(new_item), other_text), (section, key, new_item)
                if len(str(old_item)) > 3:  # short values (1, "8"...) occur by chance
                    assert not occurs(str(old_item), values_text), (section, key, old_item)
    assert "nvidia-l4" in other_text and "NVIDIA_L4" in other_text
    assert "--provisioning-model=SPOT" in other_text
    assert "--accelerator=type=nvidia-l4,count=2" in other_text
    assert "--boot-disk-size=321GB" in other_text
    assert "pilotstate-driver-timeout=77" in other_text
    assert "KERASTUNER_ORACLE_PORT=9123" in other_text
    assert "--epochs,3" in other_text and "--seed 5" in other_text
    assert other_text.count("KERASTUNER_TUNER_ID=") == 4
    assert example_text.count("KERASTUNER_TUNER_ID=") == 3


def test_run_id_names_everything_and_defaults_to_the_time(capsys):
    assert main(["train", "--config", str(EXAMPLE), "--dry-run"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    name = shlex.split(line)[4]
    assert name.startswith("pilotstate-train-20") and len(name) == len("pilotstate-train-") + 15
    with pytest.raises(SystemExit):
        main(["train", "--config", str(EXAMPLE), "--run-id", "Bad_Id", "--dry-run"])
    assert "run id 'Bad_Id'" in capsys.readouterr().err


def test_a_run_echoes_and_runs_each_command_and_stops_at_a_failure(tmp_path, monkeypatch):
    """Without --dry-run the commands really run: a recording `gcloud` on PATH."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "bin" / "gcloud"
    fake.parent.mkdir()
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "$FAKE_LOG"\n'
                    '[[ "$2" != "cp" ]]\n')  # the upload (gcloud storage cp) fails
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_LOG", str(log))
    result = subprocess.run(
        [sys.executable, "-m", "infra", "all", "--config", str(EXAMPLE), "--run-id", RUN_ID],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "error: exit status 1: gcloud" in result.stderr
    calls = log.read_text().splitlines()
    expected = [argv for step in ("services", "bucket", "registry", "upload")
                for argv in commands(step)][:4]  # stops at the first upload
    assert calls == [" ".join(argv[1:]) for argv in expected]
    assert result.stdout.splitlines() == ["+ " + shlex.join(argv) for argv in expected]


def test_missing_tool_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["bucket", "--config", str(EXAMPLE), "--run-id", RUN_ID]) == 1
    assert "gcloud: not installed or not on PATH" in capsys.readouterr().err


def test_bad_config_file_is_reported_with_its_path(tmp_path, capsys):
    bad = tmp_path / "cloud.toml"
    bad.write_text(EXAMPLE.read_text().replace('accelerator_count = 1', 'accelerator_count = 0'))
    assert main(["train", "--config", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "[gpu] accelerator_count" in err and ">= 1" in err


def test_example_config_documents_every_key():
    text = EXAMPLE.read_text()
    assert "your-project-id" in text
    for section, table in example_document().items():
        assert f"[{section}]" in text
        assert all(f"\n{key} = " in text for key in table), section


def test_values_the_startup_script_would_split_are_refused():
    with pytest.raises(ValueError, match="whitespace"):
        ContainerVm(name="n", role="train", machine_type="m", gpus=True, args=("a b",))
    with pytest.raises(ValueError, match="may not contain ';'"):
        metadata_flag({"pilotstate-args": "--x;y"})
    assert metadata_flag({"a": "1,2", "b": ""}) == "--metadata=^;^a=1,2;b="
