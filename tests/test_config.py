"""Bad configuration is rejected before any job runs, with the key named, and nothing is written.

Most cases are checked in-process, through the functions workflow/rules/common.smk calls (assemble, then
checked_study); a few go through Snakemake end to end, to show that the workflow reports those errors."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, small_study

from lrstudy.config import (
    Adaptive,
    ConfigError,
    Stats,
    Study,
    checked_study,
    load_yaml,
    prepare_config,
    stats_from_param,
    stats_param,
)
from lrstudy.studies import assemble

NAME = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # the schema's pattern for a variant name
EXECUTION_SETTING = (
    "is an execution setting, not part of the recipe: move it under `execution:` (it applies to every run)"
)

BAD = [
    ({"train": {"epochs": 0}}, "invalid config: train.epochs: 0 is less than the minimum of 1"),
    ({"train": {"batch_size": -2}}, "invalid config: train.batch_size: -2 is less than the minimum of 1"),
    ({"train": {"epochs": "ten"}}, "invalid config: train.epochs: 'ten' is not of type 'integer'"),
    ({"train": {"bogus": 1}}, "invalid config: train: unknown key 'bogus'"),
    ({"datasets": {}}, "invalid config: (top level): unknown key 'datasets' (did you mean `dataset`?)"),
    ({"variants": {"a b": {}}}, f"invalid config: variants: 'a b' does not match {NAME!r}"),
    ({"variants": {"a/b": {}}}, f"invalid config: variants: 'a/b' does not match {NAME!r}"),
    ({"variants": {"x": {"lr": 0}}}, "invalid config: variants.x.lr: 0 is less than or equal to the minimum of 0"),
    (
        {"variants": {"x": {"lr_windows": [{"start": 3, "end": 9, "factor": 2}]}}},
        "variants.x.lr_windows[0]: window [3, 9) lies outside the run's epochs 1..4 "
        "(end is the first epoch after the window, at most 5)",
    ),
    (
        {"variants": {"x": {"lr_windows": [{"start": 3, "end": 3, "factor": 2}]}}},
        "variants.x.lr_windows[0]: end (3) must be greater than start (3)",
    ),
    (
        {"variants": {"x": {"lr_windows": [{"start": 1, "end": 3, "factor": 2}, {"start": 2, "end": 4, "factor": 2}]}}},
        "variants.x.lr_windows[0] and [1] overlap; give one window per epoch range",
    ),
    (
        {"variants": {"x": {"schedul": "step"}}},
        "invalid config: variants.x: unknown key 'schedul' (did you mean `schedule`?)",
    ),
    ({"seeds": [0, -1]}, "invalid config: seeds[1]: -1 is less than the minimum of 0"),
    ({"seeds": [1, 1]}, "invalid config: seeds: [1, 1] has non-unique elements"),
    (
        {"dataset": {"url": "ftp://x/y.tgz"}},
        "invalid config: dataset.url: 'ftp://x/y.tgz' does not match '^(https?|file)://'",
    ),
    ({"dataset": {"md5": "xyz"}}, "invalid config: dataset.md5: 'xyz' does not match '^[0-9a-fA-F]{32}$'"),
    ({"train": {"lr": float("nan")}}, "invalid config: train.lr: nan is not a finite number"),
    (
        {"variants": {"x": {"weight_decay": float("inf")}}},
        "invalid config: variants.x.weight_decay: inf is not a finite number",
    ),
    (
        {"variants": {"x": {"lr_windows": [{"start": 2, "end": 3, "factor": float("-inf")}]}}},
        "invalid config: variants.x.lr_windows[0].factor: -inf is not a finite number",
    ),
    ({"train": {"device": "cpu"}}, f"train.device {EXECUTION_SETTING}"),
    ({"variants": {"x": {"compile": True}}}, f"variants.x.compile {EXECUTION_SETTING}"),
    ({"execution": {"cpu_threads": 0}}, "invalid config: execution.cpu_threads: 0 is less than the minimum of 1"),
    ({"figures": {"seed_lines": "yes"}}, "invalid config: figures.seed_lines: 'yes' is not of type 'boolean'"),
    (
        {"grid": [{"windows": [{"start": 2, "end": 3}], "factors": [5], "name": "lr_x5"}]},
        "grid[0]: variant 'lr_x5' is already defined; give the grid another `name` pattern "
        "(fields {start}, {end}, {factor})",
    ),
    (
        {"grid": [{"windows": [{"start": 3, "end": 9}], "factors": [2]}]},
        "variants.lr_x2_e3-9.lr_windows[0]: window [3, 9) lies outside the run's epochs 1..4 "
        "(end is the first epoch after the window, at most 5)",
    ),
    ({"train": {"epoch": 1}}, "invalid config: train: unknown key 'epoch' (did you mean `epochs`?)"),
]


def merged(base: dict, bad: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in bad.items():
        if key in ("variants", "seeds") or not isinstance(value, dict):
            out[key] = value
        else:
            out.setdefault(key, {}).update(value)
    return out


@pytest.fixture
def project(tmp_path) -> Path:
    """A project folder as common.smk sees it: the defaults (config.yaml), no local.yaml yet."""
    shutil.copy2(REPO / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


def study_of(project: Path, study: dict) -> Study:
    """What common.smk makes of `snakemake --configfile STUDY`: the layers assembled, then checked. The study
    goes through YAML as a config file does."""
    config, _ = assemble(project, yaml.safe_load(yaml.safe_dump(study)))
    return checked_study(config)


@pytest.mark.parametrize("bad, message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_config_names_the_key(project, archive, bad, message):
    with pytest.raises(ConfigError) as error:
        study_of(project, merged(small_study(archive), bad))
    assert str(error.value) == message


@pytest.mark.workflow
@pytest.mark.parametrize("case", [0, 10], ids=["schema", "lr_windows"])
def test_bad_config_stops_the_workflow_before_any_job(workflow, archive, case):
    bad, message = BAD[case]
    cfg = workflow.write_config(merged(small_study(archive), bad))
    proc = workflow.snakemake("-n", "--configfile", str(cfg), check=False)
    out = proc.stdout + proc.stderr
    # The sentence alone, not "ConfigError in file .../common.smk, line 76:" and the source lines (issue 32.8).
    assert proc.returncode == 1 and proc.stderr.splitlines()[-1] == message
    assert "ConfigError" not in out and 'File "' not in out
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
        assert "InputFunctionException" not in proc.stderr and 'File "' not in proc.stderr  # the sentence alone


def test_targets_inside_the_study_plan_exactly_their_jobs(workflow, archive):
    cfg = workflow.write_config(small_study(archive))
    data = {"download": 1, "prepare_data": 1}
    for target, jobs in [
        ("results/runs/lr_x5/summary.csv", {**data, "train": 2, "variant_summary": 1}),
        ("results/runs/lr_x5/seed1/metrics.csv", {**data, "train": 1}),
        ("report.html", {**data, "train": 4, "aggregate": 1, "figures": 1, "tables": 1, "report": 1}),
    ]:
        assert workflow.planned_jobs("--configfile", str(cfg), "--", target) == jobs, target


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


def duplicated_baseline(path: Path) -> Path:
    path.write_text(path.read_text().replace("  lr_x5:", "  baseline:\n    lr: 0.2\n  lr_x5:"))
    return path


def test_duplicate_variant_names_are_rejected(tmp_path, archive):
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(small_study(archive), sort_keys=False))
    line = cfg.read_text().splitlines().index("  lr_x5:") + 1  # where the second `baseline:` goes, 1-based
    with pytest.raises(ConfigError) as error:
        load_yaml(duplicated_baseline(cfg))
    assert str(error.value) == f"{cfg}, line {line}: key 'baseline' appears twice"


@pytest.mark.workflow
def test_duplicate_variant_names_stop_the_workflow(workflow, archive):
    cfg = duplicated_baseline(workflow.write_config(small_study(archive)))
    proc = workflow.snakemake("-n", "--configfile", str(cfg), check=False)
    assert proc.returncode == 1 and "key 'baseline' appears twice" in proc.stdout + proc.stderr


@pytest.mark.parametrize("name, kind", [("1", "int"), ("on", "bool"), ("null", "NoneType"), ("1.5", "float")])
def test_variant_names_that_yaml_reads_as_other_types_are_refused(project, archive, name, kind):
    text = yaml.safe_dump(small_study(archive), sort_keys=False).replace("  lr_x5:", f"  {name}:")
    config, _ = assemble(project, yaml.safe_load(text))
    with pytest.raises(ConfigError) as error:
        checked_study(config)
    assert str(error.value).startswith(f"variants: the name {yaml.safe_load(name)!r} is read by YAML as a {kind}, ")


@pytest.mark.parametrize("text, message", [("", "the config file is empty"), ("- 1\n", "holds a list")])
def test_an_empty_or_non_mapping_local_file_is_named(project, text, message):
    (project / "local.yaml").write_text(text)
    with pytest.raises(ConfigError) as error:
        assemble(project, {})
    assert str(error.value).startswith(f"{project / 'local.yaml'}: ") and message in str(error.value)


def test_a_grid_expands_to_named_variants(project, archive):
    study = small_study(archive)
    del study["variants"]
    study["grid"] = [{"windows": [{"start": 2, "end": 3}, {"start": 3, "end": 5}], "factors": [0.5, 2]}]
    parsed = study_of(project, study)
    assert parsed.variants == ["lr_x0.5_e2-3", "lr_x2_e2-3", "lr_x0.5_e3-5", "lr_x2_e3-5"]
    assert parsed.recipes["lr_x2_e3-5"].lr_windows == ((3, 5, 2.0),) and parsed.seeds == (0, 1)


def test_a_grid_study_plans_the_sweep_plot(workflow, archive):
    study = small_study(archive)
    study["grid"] = [{"windows": [{"start": 2, "end": 3}], "factors": [0.5, 2]}]
    out = workflow.snakemake("-n", "--configfile", str(workflow.write_config(study))).stdout
    assert "results/figures/sweep.png" in out


def test_a_grid_beside_written_variants_adds_to_them(project, archive):
    study = small_study(archive)
    study["grid"] = [{"windows": [{"start": 2, "end": 4}], "factors": [3], "name": "bump{factor}"}]
    assert study_of(project, study).variants == ["baseline", "lr_x5", "bump3"]


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


def test_a_number_snakemakes_config_flag_read_as_text_says_to_use_a_configfile(project, archive):
    """`--config "train={epochs: 3}"`: Snakemake reads every value inside {...} as text. The sentence told
    the user to write 3 as 3.0e+00 (which --config reads as text too, and epochs is an integer)."""
    config, _ = assemble(project, small_study(archive) | {"train": {"epochs": "3"}})
    with pytest.raises(ConfigError) as error:
        checked_study(config)
    assert str(error.value) == (
        "invalid config: train.epochs: '3' is not of type 'integer' (snakemake --config reads every value "
        "inside {...} as text: set train.epochs in a file given with --configfile)"
    )


def test_the_statistics_are_parsed_once_into_plain_numbers_that_travel_as_one_param(project, archive):
    study = study_of(
        project,
        small_study(archive)
        | {
            "seeds": [0, 1, 2],
            "stats": {"multiplicity": "none"},
            "adaptive": {"max_seeds": 7, "effect_pct": 0.2, "power": 0.9},
        },
    )
    assert study.stats == Stats("none", 0.05, Adaptive(stage_seeds=3, max_seeds=7, effect_pct=0.2, power=0.9))
    assert study.stats.adaptive.sizes == (3, 4) and study.run_seeds == list(range(7))
    assert stats_from_param(stats_param(study.stats)) == study.stats  # what the analysis rules' scripts read
    assert study_of(project, small_study(archive)).stats == Stats()  # config.yaml: holm, a fixed design
    # Plain numbers: parsing a study imports no numerical library (lrstudy-train reads the config too).
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, lrstudy.config; print(sorted({'numpy', 'scipy', 'pandas'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert loaded.strip() == "[]"
