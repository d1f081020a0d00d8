"""Named grids: trial counts derived from each grid's definition, axis values, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from study.grids import GRIDS, Grid, build_grid, config_key, dedupe, describe_grids
from trainables.config import SearchConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lr_ablation.toml"


def _values(configs, field):
    return {getattr(c, field) for c in configs}


def test_registry_names():
    assert set(GRIDS) == {"table1", "table4", "table5", "darts", "paper", "smoke"}
    assert all(isinstance(g, Grid) and g.name == name for name, g in GRIDS.items())


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_every_config_valid_and_unique(name):
    configs = GRIDS[name].build()
    assert configs and all(isinstance(c, SearchConfig) for c in configs)
    for c in configs:
        assert SearchConfig.from_dict(c.to_dict()) == c
    assert len({config_key(c) for c in configs}) == len(configs)


def test_table1():
    configs = GRIDS["table1"].build()
    assert len(configs) == 2 * 3 * 5  # methods × datasets × seeds
    assert _values(configs, "dataset") == {"cifar10", "cifar100", "imagenet16-120"}
    assert _values(configs, "seed") == {0, 1, 2, 3, 4}
    assert _values(configs, "space") == {"nb201"}
    assert _values(configs, "batch_size") == {64} and _values(configs, "epochs") == {50}
    darts = [c for c in configs if c.level == "bi"]
    single = [c for c in configs if c.level == "single"]
    assert len(darts) == len(single) == 15
    assert {(c.arch_data, c.order, c.activation, c.w_lr) for c in darts} == {
        ("split", "first", "softmax", 0.025)
    }
    assert {(c.activation, c.w_optimizer, c.w_lr) for c in single} == {("sigmoid", "sgd", 0.005)}
    assert {(c.arch_optimizer, c.arch_lr, c.arch_beta1, c.arch_beta2) for c in configs} == {
        ("adam", 3e-4, 0.5, 0.999)
    }


def test_table4():
    configs = GRIDS["table4"].build()
    assert len(configs) == 3 * 3 * 5  # data modes × datasets × seeds
    modes = {(c.level, c.arch_data) for c in configs}
    assert modes == {("bi", "split"), ("bi", "same"), ("single", "split")}
    assert _values(configs, "dataset") == {"cifar10", "cifar100", "imagenet16-120"}
    assert {(c.w_optimizer, c.arch_optimizer, c.w_lr, c.arch_lr) for c in configs} == {
        ("sgd", "sgd", 0.005, 0.005)
    }
    assert _values(configs, "activation") == {"softmax"}


def test_table5():
    configs = GRIDS["table5"].build()
    # per method × dataset × seed: 3 lrs + 2 more activations + 1 more α optimizer (the
    # reference SGD-0.005 trial is shared by the three sub-tables)
    assert len(configs) == 2 * 2 * 5 * (3 + 2 + 1)
    assert _values(configs, "dataset") == {"cifar10", "cifar100"}
    sgd = [c for c in configs if c.arch_optimizer == "sgd"]
    assert _values(sgd, "w_lr") == {0.001, 0.005, 0.025}
    assert all(c.w_lr == c.arch_lr for c in sgd)
    assert _values(configs, "activation") == {"softmax", "sigmoid", "sigmoid*"}
    assert _values(configs, "arch_optimizer") == {"sgd", "adam"}
    assert _values(configs, "w_optimizer") == {"sgd"}
    adam = [c for c in configs if c.arch_optimizer == "adam"]
    assert {(c.w_lr, c.arch_lr) for c in adam} == {(0.005, 3e-4)}
    for level, default_act in (("bi", "softmax"), ("single", "sigmoid")):
        lr_rows = [c for c in sgd if c.level == level and c.w_lr != 0.005]
        assert _values(lr_rows, "activation") == {default_act}
    bi = [c for c in configs if c.level == "bi"]
    assert {(c.arch_data, c.order) for c in bi} == {("split", "first")}


def test_table5_single_adam_is_table1_single():
    # The paper's Table 5 Single-DARTS/Adam number equals Table 1's Single-DARTS: same trial.
    t1 = {config_key(c) for c in GRIDS["table1"].build() if c.level == "single"}
    t5 = {config_key(c) for c in GRIDS["table5"].build() if c.arch_optimizer == "adam"}
    single_t5 = {k for k in t5 if k in t1}
    assert len(single_t5) == 2 * 5  # cifar10, cifar100 × seeds


def test_darts_grid():
    configs = GRIDS["darts"].build()
    assert len(configs) == 2 * 3 + 1  # methods × seeds on CIFAR-10, + one ImageNet-1k search
    assert _values(configs, "space") == {"darts"}
    assert _values(configs, "depth") == {8} and _values(configs, "channels") == {16}
    cifar = [c for c in configs if c.dataset == "cifar10"]
    assert len(cifar) == 6 and _values(cifar, "stem") == {"cifar"}
    assert _values(cifar, "level") == {"single", "bi"}
    assert _values(cifar, "seed") == {0, 1, 2} and _values(cifar, "batch_size") == {64}
    (imagenet,) = [c for c in configs if c.dataset != "cifar10"]
    single_cifar = next(c for c in cifar if c.level == "single" and c.seed == 0)
    # the paper's ImageNet-1k search: Single-DARTS's DARTS-space recipe, stem ×8, batch 360
    assert imagenet == single_cifar.replace(dataset="imagenet", stem="imagenet", batch_size=360)
    assert (imagenet.activation, imagenet.w_lr, imagenet.arch_weight_decay) == (
        "sigmoid*",
        0.025,
        0.0,
    )


def test_paper_is_deduped_union():
    union = [c for name in ("table1", "table4", "table5", "darts") for c in GRIDS[name].build()]
    paper = GRIDS["paper"].build()
    assert len(paper) == len({config_key(c) for c in union})
    assert {config_key(c) for c in paper} == {config_key(c) for c in union}
    assert len(paper) == len({config_key(c) for c in paper})
    # shared trials: Table 1 Single-DARTS and Table 4 bi/split + single on cifar10/100 in Table 5
    assert len(paper) == 30 + 45 + 120 + 7 - 3 * 2 * 5


def test_smoke():
    configs = GRIDS["smoke"].build()
    assert len(configs) == 8
    assert _values(configs, "dataset") == {"digits"}
    assert {(c.channels, c.depth, c.batch_size, c.epochs, c.steps_per_epoch) for c in configs} == {
        (8, 1, 64, 2, 0)
    }
    assert {(c.level, c.activation, c.seed) for c in configs} == {
        (lv, a, s) for lv in ("single", "bi") for a in ("softmax", "sigmoid") for s in (0, 1)
    }


def test_describe_grids():
    rows = describe_grids()
    assert [r[0] for r in rows] == list(GRIDS)
    counts = {name: n for name, n, _ in rows}
    assert counts == {
        "table1": 30,
        "table4": 45,
        "table5": 120,
        "darts": 7,
        "paper": 172,
        "smoke": 8,
    }
    assert all(isinstance(d, str) and d for _, _, d in rows)


def test_build_grid_overrides():
    configs = build_grid("smoke", epochs=1, data_dir="/d", benchmark_dir="/b")
    assert len(configs) == 8
    assert {(c.epochs, c.data_dir, c.benchmark_dir) for c in configs} == {(1, "/d", "/b")}
    assert build_grid("smoke") == GRIDS["smoke"].build()


def test_build_grid_seeds_reexpands_and_dedupes():
    one = build_grid("smoke", seeds=1)
    assert len(one) == 4 and _values(one, "seed") == {0}
    three = build_grid("table1", seeds=3)
    assert len(three) == 2 * 3 * 3 and _values(three, "seed") == {0, 1, 2}
    assert len(build_grid("paper", seeds=1)) == len(
        {config_key(c.replace(seed=0)) for c in build_grid("paper")}
    )


def test_build_grid_toml_path():
    assert len(build_grid(str(EXAMPLE), seeds=2)) == 2 * 3 * 2


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"seeds": 0}, {"seeds": -2}, {"epochs": 1.5}])
def test_build_grid_rejects_non_positive(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        build_grid("smoke", **bad)


@pytest.mark.parametrize("name", ["tabel1", "missing.toml"])
def test_unknown_grid_lists_names(name):
    with pytest.raises(ValueError) as info:
        build_grid(name)
    text = str(info.value)
    assert name in text and ".toml" in text
    assert all(n in text for n in GRIDS)


def test_config_key_stable_and_distinct():
    a = SearchConfig(dataset="cifar10")
    assert config_key(a) == config_key(SearchConfig(dataset="cifar10")) == config_key(a)
    assert len(config_key(a)) == 12 and int(config_key(a), 16) >= 0
    assert config_key(a.replace(w_lr=1)) == config_key(a.replace(w_lr=1.0))
    assert config_key(a) != config_key(a.replace(seed=1))
    keys = {config_key(c) for c in GRIDS["paper"].build()}
    assert len(keys) == len(GRIDS["paper"].build())


def test_dedupe_keeps_first_order():
    a, b, c = (SearchConfig(seed=s) for s in (2, 0, 1))
    assert dedupe([a, b, a, c, b]) == [a, b, c]
