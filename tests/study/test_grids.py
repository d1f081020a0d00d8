"""Named grids: trial counts derived from each grid's definition, axis values, overrides."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from study.grids import GRIDS, Grid, build_grid, config_key, dedupe, describe_grids
from trainables.config import SearchConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lr_ablation.toml"
PAPER_GRIDS = ("table1", "table4", "table5", "darts")
DEFAULT_ARCH_WEIGHT_DECAY = SearchConfig().arch_weight_decay

# Appendix D of the paper, "Searched results in DARTS": its 15 ImageNet-1k searches as
# (activation, seed, data_fraction), half of the data = 0.5.
APPENDIX_D = [(a, s, 1.0) for a in ("softmax", "sigmoid", "sigmoid*") for s in (0, 1, 2)] + [
    (a, s, 0.5) for a in ("softmax", "sigmoid*") for s in (0, 1, 2)
]


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
    # per method × dataset × seed: 3 lrs (the 0.005 row is the reference SGD-0.005 trial shared
    # by 5a, 5b and 5c) + 2 more activations + 1 more α optimizer
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
    assert len(configs) == 2 * 3 + 15  # methods × seeds on CIFAR-10, + Appendix D's 15
    assert _values(configs, "space") == {"darts"}
    assert _values(configs, "depth") == {8} and _values(configs, "channels") == {16}
    assert _values(configs, "epochs") == {50}
    cifar = [c for c in configs if c.dataset == "cifar10"]
    assert len(cifar) == 6 and _values(cifar, "stem") == {"cifar"}
    assert _values(cifar, "level") == {"single", "bi"}
    assert _values(cifar, "seed") == {0, 1, 2} and _values(cifar, "batch_size") == {64}
    assert _values(cifar, "data_fraction") == {1.0}
    single_cifar = [c for c in cifar if c.level == "single"]
    assert {(c.activation, c.w_lr, c.arch_weight_decay) for c in single_cifar} == {
        ("sigmoid*", 0.025, 0.0)
    }


def test_darts_grid_imagenet_is_appendix_d():
    configs = GRIDS["darts"].build()
    imagenet = [c for c in configs if c.dataset != "cifar10"]
    assert len(imagenet) == 15
    assert Counter((c.activation, c.seed, c.data_fraction) for c in imagenet) == Counter(APPENDIX_D)
    assert _values(imagenet, "dataset") == {"imagenet"} and _values(imagenet, "stem") == {
        "imagenet"
    }
    # Single-DARTS's DARTS-space recipe (§5.1.2): single level, batch 360, w SGD 0.025 cosine,
    # α Adam 3e-4 (0.5, 0.999); only the activation, the data fraction and the seed vary
    single_cifar = next(c for c in configs if c.dataset == "cifar10" and c.level == "single")
    recipe = single_cifar.replace(dataset="imagenet", stem="imagenet", batch_size=360)
    for c in imagenet:
        assert c == recipe.replace(
            activation=c.activation,
            seed=c.seed,
            data_fraction=c.data_fraction,
            arch_weight_decay=c.arch_weight_decay,
        )
    assert {(c.level, c.w_lr, c.arch_optimizer, c.arch_lr) for c in imagenet} == {
        ("single", 0.025, "adam", 3e-4)
    }
    assert _values(imagenet, "data_fraction_seed") == {0}  # every seed searches the same half


def _cosine(config: SearchConfig, fraction: float) -> float:
    """w's lr at ``fraction`` of training (the per-epoch cosine from w_lr to w_lr_min)."""
    lo, hi = config.w_lr_min, config.w_lr
    return lo + (hi - lo) * (1 + math.cos(math.pi * fraction)) / 2


def test_table5_lr_rows_vary_only_the_lr():
    configs = GRIDS["table5"].build()
    sgd = [c for c in configs if c.arch_optimizer == "sgd"]
    for level, activation in (("bi", "softmax"), ("single", "sigmoid")):
        for dataset in ("cifar10", "cifar100"):
            cell = [
                c
                for c in sgd
                if (c.level, c.activation, c.dataset, c.seed) == (level, activation, dataset, 0)
            ]
            # w's cosine ends at w_lr / 5: the 0.005 row (to 0.001) is the one trial it shares
            # with Tables 4, 5b and 5c
            assert sorted((c.w_lr, round(c.w_lr_min, 12)) for c in cell) == [
                (0.001, 2e-4),
                (0.005, 0.001),
                (0.025, 0.005),
            ]
            rows = cell
            for c in rows:
                assert c.w_lr_min / c.w_lr == pytest.approx(0.001 / 0.005)
                assert c.arch_lr == c.w_lr  # α's lr is the row's lr (constant)
            # the same schedule shape: lr(t) / w_lr equal across the rows
            for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
                shapes = {round(_cosine(c, fraction) / c.w_lr, 12) for c in rows}
                assert len(shapes) == 1
            # only the lr fields differ between the rows
            lr_fields = {"w_lr", "w_lr_min", "arch_lr"}
            base = rows[0].to_dict()
            for c in rows[1:]:
                diff = {k for k, v in c.to_dict().items() if base[k] != v}
                assert diff <= lr_fields


def test_paper_is_deduped_union():
    union = [c for name in ("table1", "table4", "table5", "darts") for c in GRIDS[name].build()]
    paper = GRIDS["paper"].build()
    assert len(paper) == len({config_key(c) for c in union})
    assert {config_key(c) for c in paper} == {config_key(c) for c in union}
    assert len(paper) == len({config_key(c) for c in paper})
    # shared trials: Table 1 Single-DARTS and Table 4 bi/split + single on cifar10/100 in Table 5
    assert len(paper) == 30 + 45 + 120 + 21 - 3 * 2 * 5 == 186


def test_paper_grids_alpha_weight_decay_by_activation():
    # §5.1.2: α weight decay 0 "to avoid extra gradients on zero operations", for sigmoid and
    # sigmoid*; softmax trials keep SearchConfig's default
    for name in (*PAPER_GRIDS, "paper", "smoke"):
        configs = GRIDS[name].build()
        for c in configs:
            expected = DEFAULT_ARCH_WEIGHT_DECAY if c.activation == "softmax" else 0.0
            assert c.arch_weight_decay == expected, (name, c)
    paper = GRIDS["paper"].build()
    assert _values(paper, "activation") == {"softmax", "sigmoid", "sigmoid*"}
    assert _values(paper, "arch_weight_decay") == {DEFAULT_ARCH_WEIGHT_DECAY, 0.0}


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
        "darts": 21,
        "paper": 186,
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
