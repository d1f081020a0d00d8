"""Tuning specs: valid specs parse (cells, labels, objective columns, defaults), the examples
load, and every invalid spec is refused naming the file, the table and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from search_spaces.benchmark import NATS_TSS_DIRNAME
from study.tune_spec import Cell, ParamRange, TuneSpec, load_tune_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HEAD = '[base]\ndataset = "cifar10"\nepochs = 2\n[axes]\nlevel = ["single", "bi"]\n'
TUNE = 'samples = 4\nobjective = "benchmark:test"\n'
PARAMS = "w_lr = { low = 1e-3, high = 0.1, log = true }\n"
GOOD = """
name = "t"
description = "d"
[base]
space = "nb201"
channels = 8
[axes]
dataset = ["cifar10", "cifar100", "digits"]
level = ["single", "bi"]
[fixed]
epochs = 3
[tune]
samples = 5
objective = "benchmark:test"
[tune.params]
w_lr = { low = 1e-3, high = 0.1, log = true }
depth = { low = 1, high = 3 }
alpha_init = { low = -2.0, high = 0 }
w_optimizer = { choices = ["sgd", "adam"] }
"""


@pytest.fixture(autouse=True)
def _no_nats_bench(tmp_path, monkeypatch):
    """No NATS-Bench folder under $TORCH_HOME, whatever the machine has."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def _doc(head: str = HEAD, tune: str = TUNE, params: str = PARAMS) -> str:
    return f"{head}[tune]\n{tune}[tune.params]\n{params}"


def _write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_spec_parses(tmp_path):
    spec = load_tune_spec(_write(tmp_path, GOOD))
    assert isinstance(spec, TuneSpec)
    assert (spec.name, spec.description, spec.path) == ("t", "d", str(tmp_path / "s.toml"))
    assert [c.label for c in spec.cells] == [
        f"dataset={d}, level={lv}"
        for d in ("cifar10", "cifar100", "digits")
        for lv in ("single", "bi")
    ]
    assert all(isinstance(c, Cell) and c.config.epochs == 3 for c in spec.cells)
    columns = {c.config.dataset: c.objective_column for c in spec.cells}
    assert columns == {
        "cifar10": "bench_cifar10_test",
        "cifar100": "bench_cifar100_test",
        "digits": "bench_cifar10_test",  # judged on CIFAR-10's column
    }
    assert (spec.samples, spec.objective, spec.direction) == (5, "benchmark:test", "max")
    assert (spec.epoch, spec.sampler, spec.seed, spec.top_k, spec.early_stopping) == (
        "final",
        "tpe",
        0,
        3,
        False,
    )
    assert spec.uses_test_split


def test_param_kinds_follow_field_types(tmp_path):
    params = {p.name: p for p in load_tune_spec(_write(tmp_path, GOOD)).params}
    assert list(params) == ["w_lr", "depth", "alpha_init", "w_optimizer"]
    assert params["w_lr"] == ParamRange("w_lr", 1e-3, 0.1, True, None)
    assert params["w_lr"].kind == "float"
    assert params["depth"].kind == "int"
    assert (type(params["depth"].low), type(params["depth"].high)) == (int, int)
    assert params["alpha_init"].kind == "float" and params["alpha_init"].high == 0.0
    assert isinstance(params["alpha_init"].high, float)
    assert params["w_optimizer"].kind == "categorical"
    assert params["w_optimizer"].choices == ("sgd", "adam")


def test_sample_config_applies_values(tmp_path):
    spec = load_tune_spec(_write(tmp_path, GOOD))
    cell = spec.cells[1]
    config = spec.sample_config(cell, {"w_lr": 0.01, "depth": 2, "w_optimizer": "adam"})
    assert (config.w_lr, config.depth, config.w_optimizer) == (0.01, 2, "adam")
    assert config.replace(w_lr=cell.config.w_lr, depth=5, w_optimizer="sgd") == cell.config
    with pytest.raises(ValueError, match="not tuned"):
        spec.sample_config(cell, {"seed": 3})


def test_defaults_and_explicit_tune_keys(tmp_path):
    tune = (
        'samples = 2\nobjective = "valid_loss"\nepoch = "best"\nsampler = "random"\n'
        "seed = 7\nearly_stopping = true\n"
    )
    spec = load_tune_spec(_write(tmp_path, _doc(tune=tune)))
    assert [c.objective_column for c in spec.cells] == ["valid_loss", "valid_loss"]
    assert (spec.direction, spec.epoch, spec.sampler, spec.seed) == ("min", "best", "random", 7)
    assert spec.top_k == 2  # default min(3, samples)
    assert spec.early_stopping and not spec.uses_test_split
    tune = 'samples = 3\nobjective = "grad_inner"\ndirection = "max"\ntop_k = 1\n'
    spec = load_tune_spec(_write(tmp_path, _doc(tune=tune)))
    assert (spec.direction, spec.top_k) == ("max", 1)


def test_no_axes_is_one_cell_named_all_and_name_defaults_to_stem(tmp_path):
    spec = load_tune_spec(_write(tmp_path, _doc(head=""), name="my-spec.toml"))
    assert [c.label for c in spec.cells] == ["all"]
    assert spec.name == "my-spec"


def test_cells_list_pairs_fields(tmp_path):
    head = (
        '[base]\ndataset = "cifar10"\n'
        '[[cells]]\nlevel = "bi"\nactivation = "softmax"\n'
        '[[cells]]\nlevel = "single"\nactivation = "sigmoid"\nw_nesterov = false\n'
    )
    spec = load_tune_spec(_write(tmp_path, _doc(head=head)))
    assert [c.label for c in spec.cells] == [
        "level=bi, activation=softmax",
        "level=single, activation=sigmoid, w_nesterov=false",
    ]
    assert [(c.config.level, c.config.activation) for c in spec.cells] == [
        ("bi", "softmax"),
        ("single", "sigmoid"),
    ]


def test_valid_objective_needs_nats_bench_folder(tmp_path, monkeypatch):
    path = _write(tmp_path, _doc(tune='samples = 2\nobjective = "benchmark:valid"\n'))
    with pytest.raises(ValueError, match="--benchmark-dir"):
        load_tune_spec(path)
    spec = load_tune_spec(path, overrides={"benchmark_dir": str(tmp_path / "nb")})
    assert [c.objective_column for c in spec.cells] == ["bench_cifar10_valid"] * 2
    assert {c.config.benchmark_dir for c in spec.cells} == {str(tmp_path / "nb")}
    assert not spec.uses_test_split
    (tmp_path / "torch" / NATS_TSS_DIRNAME).mkdir(parents=True)  # found under $TORCH_HOME
    assert load_tune_spec(path).cells[0].objective_column == "bench_cifar10_valid"


def test_overrides_apply_and_cannot_touch_tuned_fields(tmp_path):
    path = _write(tmp_path, _doc())
    spec = load_tune_spec(path, overrides={"data_dir": "/data", "epochs": 1})
    assert {(c.config.data_dir, c.config.epochs) for c in spec.cells} == {("/data", 1)}
    with pytest.raises(ValueError, match=r"\[tune.params\] w_lr: tuned"):
        load_tune_spec(path, overrides={"w_lr": 0.01})
    with pytest.raises(ValueError, match="override epochs"):
        load_tune_spec(path, overrides={"epochs": 0})


def test_examples_load(tmp_path):
    smoke = load_tune_spec(EXAMPLES / "tune_smoke.toml")
    assert smoke.name == "tune-smoke"
    assert [c.label for c in smoke.cells] == ["level=single", "level=bi"]
    assert {
        (c.config.dataset, c.config.channels, c.config.depth, c.config.epochs) for c in smoke.cells
    } == {("digits", 8, 1, 2)}
    assert (smoke.samples, smoke.objective) == (4, "benchmark:test")
    assert [(p.name, p.log) for p in smoke.params] == [("w_lr", True), ("arch_lr", True)]
    table5 = EXAMPLES / "tune_table5.toml"
    with pytest.raises(ValueError, match="NATS-Bench folder"):
        load_tune_spec(table5)
    spec = load_tune_spec(table5, overrides={"benchmark_dir": str(tmp_path)})
    assert [(c.config.level, c.config.activation, c.config.arch_weight_decay)
            for c in spec.cells] == [
        ("bi", "softmax", 1e-3),
        ("bi", "sigmoid", 0.0),
        ("single", "softmax", 1e-3),
        ("single", "sigmoid", 0.0),
    ]
    assert {
        (c.config.w_optimizer, c.config.arch_optimizer, c.config.epochs) for c in spec.cells
    } == {("sgd", "sgd", 50)}
    assert (spec.samples, spec.objective, spec.epoch) == (20, "benchmark:valid", "final")
    assert [(p.name, p.low, p.high, p.log) for p in spec.params] == [
        ("w_lr", 1e-3, 0.1, True),
        ("arch_lr", 1e-3, 0.1, True),
    ]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        load_tune_spec(tmp_path / "nope.toml")


DARTS_HEAD = '[base]\nspace = "darts"\ndataset = "cifar10"\n'
CELLS_HEAD = '[[cells]]\nlevel = "bi"\n[[cells]]\nlevel = "single"\n'


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        # layout
        ('title = "x"\n' + _doc(), ["unknown top-level", "title"]),
        ('name = "a/b"\n' + _doc(), ["top-level name", "a/b"]),
        (HEAD, ["[tune] missing"]),
        ("tune = 3\n" + HEAD, ["[tune] must be a table"]),
        (_doc(tune=TUNE + "trials = 3\n"), ["[tune] unknown key", "trials"]),
        (HEAD + "[tune]\n" + TUNE, ["[tune.params]", "missing"]),
        (_doc(params=""), ["[tune.params]", "at least one"]),
        # cells
        ("[base]\nlr = 0.1\n" + _doc(head=""), ["[base] lr", "unknown SearchConfig field"]),
        (
            _doc(head="[axes]\nlevel = ['single']\narch_data = ['same']\n"),
            ["combination [axes] level='single', arch_data='same'", "only apply to level='bi'"],
        ),
        (_doc(head="[axes]\nseed = [0, 1]\n[fixed]\nseed = 7\n"), ["[axes]", "same search"]),
        (_doc(head="[axes]\nseed = [0]\n" + CELLS_HEAD), ["[[cells]] and [axes]"]),
        (_doc(head="cells = 3\n"), ["[[cells]]", "array of tables"]),
        (_doc(head="[[cells]]\nlvl = 'bi'\n"), ["[[cells]] #1 lvl", "unknown SearchConfig field"]),
        (_doc(head="[[cells]]\n[[cells]]\nlevel = 'bi'\n"), ["[[cells]] #1", "empty"]),
        (_doc(head=CELLS_HEAD + "[[cells]]\nlevel = 'tri'\n"), ["[[cells]] #3 level", "'tri'"]),
        (
            _doc(head="[[cells]]\narch_data = 'same'\n"),
            ["combination [[cells]] #1 arch_data='same'", "only apply to level='bi'"],
        ),
        (_doc(head=CELLS_HEAD + "[[cells]]\nlevel = 'bi'\n"), ["'level=bi'", "same search"]),
        # [tune] scalars
        (_doc(tune='objective = "benchmark:test"\n'), ["[tune] samples", "required"]),
        (_doc(tune=TUNE.replace("4", "0")), ["[tune] samples", ">= 1", "0"]),
        (_doc(tune=TUNE.replace("4", "2.5")), ["[tune] samples", "integer"]),
        (_doc(tune=TUNE.replace("4", "true")), ["[tune] samples", "integer"]),
        (_doc(tune=TUNE + "top_k = 0\n"), ["[tune] top_k", ">= 1"]),
        (_doc(tune=TUNE + "top_k = 5\n"), ["[tune] top_k", "exceeds samples=4"]),
        (_doc(tune=TUNE + 'sampler = "grid"\n'), ["[tune] sampler", "'grid'", "'tpe'"]),
        (_doc(tune=TUNE + 'epoch = "last"\n'), ["[tune] epoch", "'last'", "'best'"]),
        (_doc(tune=TUNE + 'direction = "up"\n'), ["[tune] direction", "'up'", "'min'"]),
        (_doc(tune=TUNE + "seed = -1\n"), ["[tune] seed", ">= 0"]),
        (_doc(tune=TUNE + "early_stopping = 1\n"), ["[tune] early_stopping", "true or false"]),
        # objective
        (_doc(tune="samples = 4\n"), ["[tune] objective", "required"]),
        (
            _doc(tune=TUNE.replace("benchmark:test", "accuracy")),
            ["[tune] objective", "'accuracy'", "not a record column"],
        ),
        (
            _doc(tune=TUNE.replace("benchmark:test", "genotype")),
            ["[tune] objective", "'genotype'", "not numeric"],
        ),
        (_doc(tune=TUNE.replace("benchmark:test", "status")), ["[tune] objective", "not numeric"]),
        (
            _doc(tune=TUNE.replace("benchmark:test", "exec_path")),
            ["[tune] objective", "not numeric"],
        ),
        (
            _doc(tune=TUNE.replace("benchmark:test", "alpha_normal")),
            ["[tune] objective", "not numeric"],
        ),
        (
            _doc(tune=TUNE.replace("benchmark:test", "benchmark:train")),
            ["[tune] objective", "split"],
        ),
        (_doc(tune="samples = 4\nobjective = 3\n"), ["[tune] objective", "got 3"]),
        (_doc(head=DARTS_HEAD), ["[tune] objective", "space='nb201'", "space='darts'"]),
        (
            _doc(head=DARTS_HEAD, tune=TUNE.replace("benchmark:test", "bench_cifar10_test")),
            ["[tune] objective", "space='nb201'"],
        ),
        (
            _doc(tune=TUNE.replace("test", "valid")),
            ["[tune] objective", "benchmark_dir in [base] or --benchmark-dir", "benchmark:test"],
        ),
        (_doc(tune=TUNE.replace("benchmark:test", "grad_inner")), ["[tune] direction", "required"]),
        # [tune.params]
        (
            _doc(params="lr = { low = 0.1, high = 1.0 }\n"),
            ["[tune.params] lr", "unknown SearchConfig field"],
        ),
        (
            _doc(params="level = { choices = ['bi'] }\n"),
            ["[tune.params] level", "[axes]", "ambiguous"],
        ),
        (
            _doc(head=CELLS_HEAD, params="level = { choices = ['bi'] }\n"),
            ["[tune.params] level", "[[cells]]"],
        ),
        (
            _doc(head=HEAD + "[fixed]\nw_lr = 0.01\n"),
            ["[tune.params] w_lr", "[fixed]", "ambiguous"],
        ),
        (_doc(params="dataset = { choices = ['cifar10'] }\n"), ["[tune.params] dataset", "[axes]"]),
        (_doc(params="w_lr = 0.1\n"), ["[tune.params] w_lr", "must be a table"]),
        (
            _doc(params="w_lr = { low = 0.01, high = 0.1, step = 0.01 }\n"),
            ["[tune.params] w_lr", "step"],
        ),
        (_doc(params="w_lr = { low = 0.01 }\n"), ["[tune.params] w_lr", "both low and high"]),
        (
            _doc(params="w_lr = { low = 0.01, high = 0.1, choices = [0.1] }\n"),
            ["[tune.params] w_lr", "not both"],
        ),
        (
            _doc(params="w_lr = { low = 0.1, high = 0.01 }\n"),
            ["[tune.params] w_lr", "low=0.1", "below high=0.01"],
        ),
        (_doc(params="w_lr = { low = 0.1, high = 0.1 }\n"), ["[tune.params] w_lr", "below"]),
        (
            _doc(params="alpha_init = { low = -2.0, high = 0.0, log = true }\n"),
            ["[tune.params] alpha_init", "log", "low > 0"],
        ),
        (
            _doc(params="w_lr = { low = 0.01, high = 0.1, log = 'yes' }\n"),
            ["[tune.params] w_lr", "log", "true or false"],
        ),
        (
            _doc(params="w_optimizer = { low = 0, high = 1 }\n"),
            ["[tune.params] w_optimizer", "numeric field", "choices"],
        ),
        (
            _doc(params="w_nesterov = { low = 0, high = 1 }\n"),
            ["[tune.params] w_nesterov", "bool field"],
        ),
        (
            _doc(params="depth = { low = 1.5, high = 3 }\n"),
            ["[tune.params] depth", "low", "integer"],
        ),
        (
            _doc(params="w_lr = { low = 'a', high = 0.1 }\n"),
            ["[tune.params] w_lr", "low", "finite number"],
        ),
        (
            _doc(params="w_lr = { choices = ['fast', 'slow'] }\n"),
            ["[tune.params] w_lr", "choice 'fast'", "type str"],
        ),
        (_doc(params="w_lr = { choices = [] }\n"), ["[tune.params] w_lr", "non-empty"]),
        (_doc(params="w_lr = { choices = [0.1, 0.1] }\n"), ["[tune.params] w_lr", "repeat 0.1"]),
        (
            _doc(params="w_optimizer = { choices = ['sgd', 'rmsprop'] }\n"),
            ["[tune.params] w_optimizer", "'rmsprop'", "choose one of"],
        ),
        (
            _doc(params="w_lr = { low = -0.1, high = 0.1 }\n"),
            ["[tune.params] w_lr", "bound -0.1", "must be > 0"],
        ),
        (
            _doc(params="w_lr = { low = 1e-4, high = 0.1 }\n"),
            ["[tune.params] w_lr", "bound 0.0001", "w_lr_min"],
        ),
        (
            _doc(params="arch_data = { choices = ['same'] }\n"),
            ["[tune.params] arch_data", "cell 'level=single'"],
        ),
    ],
)
def test_invalid_specs_name_file_table_key(tmp_path, text, parts):
    path = _write(tmp_path, text, name="x.toml")
    with pytest.raises(ValueError) as info:
        load_tune_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for part in parts:
        assert part in message
