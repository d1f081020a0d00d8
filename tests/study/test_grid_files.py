"""TOML grid files: the example loads; every invalid case names the file, table and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from study.grid_files import load_grid_file
from trainables.config import SearchConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lr_ablation.toml"
GOOD = """
name = "t"
description = "d"
[base]
dataset = "cifar10"
[axes]
level = ["single", "bi"]
seed = [0, 1, 2]
[fixed]
batch_size = 32
"""


def _write(tmp_path, text, name="g.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_example_file_loads():
    configs = load_grid_file(EXAMPLE)
    assert len(configs) == 2 * 3 * 5  # level × w_lr × seed
    assert {c.w_lr for c in configs} == {0.001, 0.005, 0.025}
    assert {c.level for c in configs} == {"single", "bi"}
    assert {(c.space, c.dataset, c.batch_size, c.epochs) for c in configs} == {
        ("nb201", "cifar10", 64, 50)
    }


def test_product_base_axes_fixed(tmp_path):
    configs = load_grid_file(_write(tmp_path, GOOD))
    assert len(configs) == 6
    assert all(isinstance(c, SearchConfig) for c in configs)
    assert [(c.level, c.seed) for c in configs[:3]] == [("single", 0), ("single", 1), ("single", 2)]
    assert {(c.dataset, c.batch_size) for c in configs} == {("cifar10", 32)}


def test_fixed_overrides_axes_and_dedupes(tmp_path):
    text = '[axes]\nseed = [0, 1]\nlevel = ["single", "bi"]\n[fixed]\nseed = 7\n'
    configs = load_grid_file(_write(tmp_path, text))
    assert [(c.level, c.seed) for c in configs] == [("single", 7), ("bi", 7)]


def test_no_axes_is_one_trial(tmp_path):
    assert len(load_grid_file(_write(tmp_path, '[base]\ndataset = "cifar100"\n'))) == 1


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        load_grid_file(tmp_path / "nope.toml")


def test_syntax_error_names_file_and_line(tmp_path):
    path = _write(tmp_path, '[base]\ndataset = "cifar10"\nlevel = \n')
    with pytest.raises(ValueError, match=r"g\.toml.*line 3"):
        load_grid_file(path)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("[bases]\nseed = 1\n", ["unknown top-level", "bases"]),
        ('title = "x"\n', ["unknown top-level", "title"]),
        ("name = 3\n", ["name", "string"]),
        ("base = 3\n", ["[base]", "table"]),
        ("[base]\nlr = 0.1\n", ["[base] lr", "unknown SearchConfig field"]),
        ("[axes]\nlevl = ['bi']\n", ["[axes] levl", "unknown SearchConfig field"]),
        ("[fixed]\nbatch = 3\n", ["[fixed] batch", "unknown SearchConfig field"]),
        ("[axes]\nlevel = 'bi'\n", ["[axes] level", "list"]),
        ("[axes]\nseed = []\n", ["[axes] seed", "empty"]),
        (
            "[axes]\nlevel = ['single', 'tri']\n",
            ["[axes] level: 'tri' is not allowed; choose one of ['single', 'bi']"],
        ),
        ("[base]\nepochs = 0\n", ["[base] epochs", "> 0"]),
        ("[fixed]\nseed = 'a'\n", ["[fixed] seed", "type str"]),
        ("[axes]\nw_lr = [0.1, -1.0]\n", ["[axes] w_lr", "-1.0"]),
    ],
)
def test_invalid_cases_name_file_table_key(tmp_path, text, parts):
    path = _write(tmp_path, text, name="x.toml")
    with pytest.raises(ValueError) as info:
        load_grid_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for part in parts:
        assert part in message


def test_conflicting_combination_names_axis_values(tmp_path):
    text = "[axes]\nlevel = ['bi', 'single']\narch_data = ['split', 'same']\n"
    with pytest.raises(ValueError) as info:
        load_grid_file(_write(tmp_path, text))
    message = str(info.value)
    assert "g.toml" in message
    assert "level='single'" in message and "arch_data='same'" in message
    assert "only apply to level='bi'" in message


def test_cross_field_valid_in_combination(tmp_path):
    # w_lr below the default w_lr_min fails alone but not with w_lr_min lowered in [fixed]
    text = "[axes]\nw_lr = [0.0005]\n[fixed]\nw_lr_min = 0.0\n"
    assert load_grid_file(_write(tmp_path, text))[0].w_lr == 0.0005
    with pytest.raises(ValueError, match=r"w_lr=0\.0005"):
        load_grid_file(_write(tmp_path, "[axes]\nw_lr = [0.0005]\n", name="h.toml"))


# ---------------------------------------------------------------------- files that define nothing
@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n  \n\t\n",
        "# a grid file\n# (nothing here yet)\n",
        'name = "x"\n',
        'name = "x"\ndescription = "d"\n',
        "[base]\n",
        "[base]\n[axes]\n[fixed]\n",
    ],
    ids=["zero-bytes", "whitespace", "comments", "name", "name-description", "empty-base",
         "empty-tables"],
)  # fmt: skip
def test_a_file_that_sets_no_field_is_refused(tmp_path, text):
    """An empty grid file once ran one default search nobody asked for."""
    path = _write(tmp_path, text, name="empty.toml")
    with pytest.raises(ValueError) as info:
        load_grid_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: the grid file defines no trials")
    for part in ("[base]", "[axes]", "[fixed]"):
        assert part in message


@pytest.mark.parametrize("text", ["[base]\nseed = 0\n", "[fixed]\nseed = 0\n"])
def test_one_field_is_one_search(tmp_path, text):
    assert load_grid_file(_write(tmp_path, text)) == [SearchConfig(seed=0)]


# ---------------------------------------------------------------------- odd files, clear errors
@pytest.mark.parametrize(
    ("data", "parts"),
    [
        (b'name = "\xff"\n', ["not UTF-8"]),
        (b"[base]\nseed = " + b"1" * 5000 + b"\n", ["unreadable TOML value", "4300 digits"]),
        (b"[axes]\nseed = " + b"[" * 2000 + b"]" * 2000 + b"\n", ["nested too deeply"]),
        (b"[base]\nw_lr = 1" + b"0" * 400 + b"\n", ["[base] w_lr", "too large for a float"]),
        (b"[base]\nseed = 9223372036854775808\n", ["[base] seed", "out of range", "int64"]),
        (b'name = "a/b"\n[base]\nseed = 1\n', ["top-level name", "a/b"]),
        (b'name = ""\n[base]\nseed = 1\n', ["top-level name", "non-empty"]),
    ],
    ids=["not-utf8", "long-int-literal", "deep-nesting", "float-overflow", "int64-overflow",
         "name-with-slash", "empty-name"],
)  # fmt: skip
def test_odd_files_are_value_errors_naming_the_file(tmp_path, data, parts):
    path = tmp_path / "odd.toml"
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        load_grid_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for part in parts:
        assert part in message


def test_minus_zero_and_zero_are_one_trial(tmp_path):
    configs = load_grid_file(_write(tmp_path, "[axes]\nalpha_init = [0.0, -0.0]\n"))
    assert len(configs) == 1 and str(configs[0].alpha_init) == "0.0"
