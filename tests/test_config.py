"""Bad configuration is rejected before any job runs, with the key named, and nothing is written."""

import pytest
import yaml
from conftest import small_study

from lrstudy.config import ConfigError, prepare_config

BAD = [
    ({"train": {"epochs": 0}}, "train.epochs: 0 is less than the minimum of 1"),
    ({"train": {"batch_size": -2}}, "train.batch_size: -2 is less than the minimum of 1"),
    ({"train": {"epochs": "ten"}}, "train.epochs: 'ten' is not of type 'integer'"),
    ({"train": {"bogus": 1}}, "invalid config: train: unknown key 'bogus'\n"),
    ({"train": {"epoch": 1}}, "invalid config: train: unknown key 'epoch' (did you mean `epochs`?)"),
    ({"datasets": {}}, "(top level): unknown key 'datasets' (did you mean `dataset`?)"),
    ({"variants": {"a b": {}}}, "variants: 'a b' does not match"),
    ({"variants": {"a/b": {}}}, "variants: 'a/b' does not match"),
    ({"variants": {"x": {"lr": 0}}}, "variants.x.lr: 0 is less than or equal to the minimum of 0"),
    (
        {"variants": {"x": {"lr_windows": [{"start": 3, "end": 9, "factor": 2}]}}},
        "variants.x.lr_windows[0]: window [3, 9) lies outside the run's epochs 1..4",
    ),
    (
        {"variants": {"x": {"lr_windows": [{"start": 3, "end": 3, "factor": 2}]}}},
        "variants.x.lr_windows[0]: end (3) must be greater than start (3)",
    ),
    (
        {"variants": {"x": {"lr_windows": [{"start": 1, "end": 3, "factor": 2}, {"start": 2, "end": 4, "factor": 2}]}}},
        "variants.x.lr_windows[0] and [1] overlap",
    ),
    ({"variants": {"x": {"schedul": "step"}}}, "variants.x: unknown key 'schedul' (did you mean `schedule`?)"),
    ({"seeds": [0, -1]}, "seeds[1]: -1 is less than the minimum of 0"),
    ({"seeds": [1, 1]}, "seeds: [1, 1] has non-unique elements"),
    ({"dataset": {"url": "ftp://x/y.tgz"}}, "dataset.url: 'ftp://x/y.tgz' does not match"),
    ({"dataset": {"md5": "xyz"}}, "dataset.md5: 'xyz' does not match"),
    ({"train": {"lr": float("nan")}}, "invalid config: train.lr: nan is not a finite number"),
    (
        {"variants": {"x": {"weight_decay": float("inf")}}},
        "invalid config: variants.x.weight_decay: inf is not a finite",
    ),
    (
        {"variants": {"x": {"lr_windows": [{"start": 2, "end": 3, "factor": float("-inf")}]}}},
        "variants.x.lr_windows[0].factor: -inf is not a finite number",
    ),
    ({"train": {"device": "cpu"}}, "train.device is an execution setting, not part of the recipe: move it under"),
    ({"variants": {"x": {"compile": True}}}, "variants.x.compile is an execution setting"),
    ({"execution": {"cpu_threads": 0}}, "execution.cpu_threads: 0 is less than the minimum of 1"),
    ({"figures": {"seed_lines": "yes"}}, "figures.seed_lines: 'yes' is not of type 'boolean'"),
    (
        {"grid": [{"windows": [{"start": 2, "end": 3}], "factors": [5], "name": "lr_x5"}]},
        "grid[0]: variant 'lr_x5' is already defined",
    ),
    (
        {"grid": [{"windows": [{"start": 3, "end": 9}], "factors": [2]}]},
        "variants.lr_x2_e3-9.lr_windows[0]: window [3, 9) lies outside the run's epochs 1..4",
    ),
]


def merged(base: dict, bad: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in bad.items():
        if key in ("variants", "seeds") or not isinstance(value, dict):
            out[key] = value
        else:
            out.setdefault(key, {}).update(value)
    return out


@pytest.mark.parametrize("bad, message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_config_names_the_key(workflow, archive, bad, message):
    cfg = workflow.write_config(merged(small_study(archive), bad))
    proc = workflow.snakemake("-n", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (workflow.root / "results").exists() and not (workflow.root / "resources").exists()


def test_target_outside_the_study(workflow, archive):
    cfg = workflow.write_config(small_study(archive))
    for target, message in [
        ("results/runs/lr_x9/seed0/metrics.csv", "results/runs/lr_x9/seed0: no such run"),
        ("results/runs/baseline/seed7/summary.json", "results/runs/baseline/seed7: no such run"),
        ("results/runs/lr_x9/summary.csv", "results/runs/lr_x9: no such run or variant"),
        ("results/runs/lr/summary.csv", "results/runs/lr: no such run or variant"),  # a prefix of lr_x5
    ]:
        proc = workflow.snakemake("-n", "--configfile", str(cfg), "--", target, check=False)
        assert proc.returncode != 0 and message in proc.stdout + proc.stderr
        assert "variants: baseline, lr_x5; seeds: 0, 1" in proc.stdout + proc.stderr


def test_targets_inside_the_study_print_no_error(workflow, archive):
    cfg = workflow.write_config(small_study(archive))
    for target in ("results/runs/lr_x5/summary.csv", "results/runs/lr_x5/seed1/metrics.csv", "report.html"):
        proc = workflow.snakemake("-n", "--configfile", str(cfg), "--", target)
        out = proc.stdout + proc.stderr
        assert "Exception" not in out and "no such run" not in out, out


def test_configfile_variants_and_seeds_replace_the_defaults(workflow, archive):
    cfg = workflow.write_config(small_study(archive))
    assert workflow.planned_jobs("--configfile", str(cfg))["train"] == 4  # not 4 default variants x 3 seeds


def test_default_config_plans_the_full_study(workflow):
    jobs = workflow.planned_jobs()
    assert jobs["download"] == 1 and jobs["prepare_data"] == 1 and jobs["train"] == 12


def test_missing_local_archive_is_named(workflow, archive, tmp_path):
    study = small_study(archive)
    study["dataset"]["archive"] = str(tmp_path / "nowhere.tar.gz")
    cfg = workflow.write_config(study)
    proc = workflow.snakemake("--configfile", str(cfg), "--", "resources/cifar-10-python.tar.gz", check=False)
    assert proc.returncode != 0
    assert "dataset.archive:" in proc.stderr and "nowhere.tar.gz does not exist" in proc.stderr
    assert not (workflow.root / "resources" / "cifar-10-python.tar.gz").exists()


def test_duplicate_variant_names_are_rejected(workflow, archive):
    cfg = workflow.write_config(small_study(archive))
    text = cfg.read_text().replace("  lr_x5:", "  baseline:\n    lr: 0.2\n  lr_x5:")
    cfg.write_text(text)
    proc = workflow.snakemake("-n", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    assert (
        "study.yaml, line" in proc.stderr + proc.stdout and "key 'baseline' appears twice" in proc.stderr + proc.stdout
    )


@pytest.mark.parametrize("name, kind", [("1", "int"), ("on", "bool"), ("null", "NoneType"), ("1.5", "float")])
def test_variant_names_that_yaml_reads_as_other_types_are_refused(workflow, archive, name, kind):
    cfg = workflow.write_config(small_study(archive))
    cfg.write_text(cfg.read_text().replace("  lr_x5:", f"  {name}:"))
    proc = workflow.snakemake("-n", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    assert f"is read by YAML as a {kind}, not a name; quote it" in proc.stderr + proc.stdout


@pytest.mark.parametrize("text, message", [("", "the config file is empty"), ("- 1\n", "holds a list")])
def test_an_empty_or_non_mapping_local_file_is_named(workflow, text, message):
    (workflow.root / "local.yaml").write_text(text)
    proc = workflow.snakemake("-n", check=False)
    assert proc.returncode != 0
    assert "local.yaml: " in proc.stdout + proc.stderr and message in proc.stdout + proc.stderr


def test_a_grid_expands_to_named_variants(workflow, archive):
    study = small_study(archive)
    del study["variants"]
    study["grid"] = [{"windows": [{"start": 2, "end": 3}, {"start": 3, "end": 5}], "factors": [0.5, 2]}]
    out = workflow.snakemake("-n", "--configfile", str(workflow.write_config(study))).stdout
    names = {"lr_x0.5_e2-3", "lr_x2_e2-3", "lr_x0.5_e3-5", "lr_x2_e3-5"}
    assert {line.split("variant=")[1].split(",")[0] for line in out.splitlines() if "variant=" in line} == names
    assert "results/figures/sweep.png" in out  # a grid study gets the sweep plot
    assert workflow.planned_jobs("--configfile", str(workflow.write_config(study)))["train"] == 8


def test_a_grid_beside_written_variants_adds_to_them(workflow, archive):
    study = small_study(archive)
    study["grid"] = [{"windows": [{"start": 2, "end": 4}], "factors": [3], "name": "bump{factor}"}]
    out = workflow.snakemake("-n", "--configfile", str(workflow.write_config(study))).stdout
    assert "variant=bump3," in out and "variant=baseline," in out and "variant=lr_x5," in out


GRID_WINDOW = [{"start": 2, "end": 3}]


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"windows": GRID_WINDOW, "factor": [2]}, "grid[0]: unknown key 'factor' (did you mean `factors`?)"),
        ({"window": GRID_WINDOW, "factors": [2]}, "grid[0]: unknown key 'window' (did you mean `windows`?)"),
        (
            {"windows": GRID_WINDOW, "factors": [2], "name": "x{foo}"},
            "grid[0].name: 'x{foo}': unknown field {foo}; the fields are {start}, {end} and {factor}",
        ),
        ({"windows": GRID_WINDOW, "factors": [2], "name": "x{fator}"}, "{fator} (did you mean `factor`?)"),
        ({"windows": GRID_WINDOW, "factors": [2], "name": "x{"}, "grid[0].name: 'x{': not a name pattern"),
        (
            {"windows": GRID_WINDOW, "factors": yaml.safe_load("[1e-300]")},
            "grid[0].factors[0]: '1e-300' is not of type 'number' (YAML reads 1e-300 as text: write it with a "
            "decimal point and a signed exponent, e.g. 1.0e-300)",
        ),
        ({"windows": [{"start": 2, "ends": 3}], "factors": [2]}, "grid[0].windows[0]: unknown key 'ends'"),
    ],
)
def test_a_bad_grid_is_a_sentence_naming_the_key(entry, message):
    """Issue 20.7: these were KeyError, ValueError and format-code tracebacks."""
    with pytest.raises(ConfigError) as error:
        prepare_config({"variants": {}, "grid": [entry]})
    assert str(error.value).startswith("invalid config: grid[0]") and message in str(error.value)
