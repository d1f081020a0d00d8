"""The paper's tables from results written by the real writer, checked against hand arithmetic.

Every expected mean and std below is computed in the test from the numbers written, with the
sample std (n - 1 in the denominator), never with pandas.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
import pytest
from builders import COLLAPSED, HEALTHY, TrialSpec, record, write_study

from analysis.results import load_results
from analysis.tables import (
    OPTIMAL,
    ablation_table,
    collapse_table,
    main_table,
    paper_tables,
    summary_table,
)
from search_spaces.benchmark import NATS_TSS_DIRNAME, TableBenchmark
from study.grids import DARTS, SINGLE, table4, table5

REPO = Path(__file__).resolve().parents[2]
FAKE_BENCH = REPO / "tests" / "fixtures" / "nats-fake" / NATS_TSS_DIRNAME

# Final-epoch NAS-Bench-201 test accuracies written per (method, dataset), one per seed.
FINAL = {
    ("DARTS", "cifar10"): [54.30, 60.10, 39.77],
    ("DARTS", "cifar100"): [15.61, 30.20, 21.00],
    ("DARTS", "imagenet16-120"): [16.32, 27.11],
    ("Single-DARTS", "cifar10"): [93.76, 94.02, 93.51],
    ("Single-DARTS", "cifar100"): [71.11, 70.45, 72.40],
}
METHODS = {"DARTS": DARTS, "Single-DARTS": SINGLE}
BENCH_KEY = {"cifar10": "cifar10_test", "cifar100": "cifar100_test",
             "imagenet16-120": "imagenet16_120_test"}


def sample_mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


@pytest.fixture(scope="module")
def table1_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    trials = []
    for (method, dataset), finals in FINAL.items():
        for seed, final in enumerate(finals):
            config = METHODS[method].replace(dataset=dataset, seed=seed)
            key = BENCH_KEY[dataset]
            records = [
                record(1, genotype=COLLAPSED, bench={key: final - 20.0}),  # not the final epoch
                record(2, genotype=HEALTHY, bench={key: final}),
            ]
            trials.append(TrialSpec(f"{method}-{dataset}-{seed}", config, records))
    write_study(root, "table1", trials)
    # DARTS/cifar10/seed 0 crashed after epoch 2 was written and re-reported it (attempt 1)
    # with another value: the last attempt must win, and count once.
    rerun = TrialSpec(
        "DARTS-cifar10-0",
        DARTS.replace(dataset="cifar10", seed=0),
        [record(2, genotype=HEALTHY, bench={"cifar10_test": 54.30})],
        attempt=1,
    )
    stale = TrialSpec(  # the crashed attempt's value of the same epoch, reported earlier
        "DARTS-cifar10-0",
        DARTS.replace(dataset="cifar10", seed=0),
        [record(2, genotype=HEALTHY, bench={"cifar10_test": 11.0})],
    )
    write_study(root, "table1", [stale])
    write_study(root, "table1", [rerun])
    return root


def cell(table, row: str, dataset: str, metric: str) -> pd.Series:
    stats = table.stats
    match = stats[(stats[table.row_columns[0]] == row) & (stats.dataset == dataset)
                  & (stats.metric == metric)]
    assert len(match) == 1, match
    return match.iloc[0]


def test_main_table_mean_and_sample_std_of_final_epochs(table1_root) -> None:
    table = main_table(load_results(table1_root), benchmark=TableBenchmark())
    assert table.row_columns == ("method",)  # nothing varies inside a method
    for (method, dataset), finals in FINAL.items():
        mean, std = sample_mean_std(finals)
        got = cell(table, method, dataset, "test")
        assert got["mean"] == pytest.approx(mean, abs=1e-9)
        assert got["std"] == pytest.approx(std, abs=1e-9)
        assert got["n"] == len(finals) and got["trials"] == len(finals)
        valid = cell(table, method, dataset, "valid")  # the shipped table has no valid column
        assert math.isnan(valid["mean"]) and valid["n"] == 0
    markdown = table.to_markdown()
    mean, std = sample_mean_std(FINAL[("DARTS", "cifar10")])
    assert f"{mean:.2f} ± {std:.2f}" in markdown  # 51.39 ± 10.47
    assert "| DARTS | n/a | 51.39 ± 10.47 |" in markdown
    assert "only the shipped test-accuracy table" in markdown


def test_optimal_row_is_the_benchmarks_optimum(table1_root) -> None:
    df = load_results(table1_root)
    shipped = main_table(df, benchmark=TableBenchmark())
    optimum, _ = TableBenchmark().optimum("cifar100_test")
    assert cell(shipped, OPTIMAL, "cifar100", "test")["mean"] == optimum
    assert math.isnan(cell(shipped, OPTIMAL, "cifar10", "valid")["mean"])
    # Through the real nats_bench API the test optima agree; the miniature fixture lacks most
    # records, so its valid optima are n/a with a note naming the missing record.
    nats = main_table(df, benchmark_dir=FAKE_BENCH)
    assert cell(nats, OPTIMAL, "cifar100", "test")["mean"] == optimum
    assert math.isnan(cell(nats, OPTIMAL, "imagenet16-120", "valid")["mean"])
    assert any("index 1" in note and "incomplete" in note for note in nats.notes)
    last = nats.cells().iloc[-1]
    assert last["method"] == OPTIMAL and last["seeds"] == ""


def test_missing_dataset_and_uneven_seeds_still_render(table1_root) -> None:
    table = main_table(load_results(table1_root), benchmark=TableBenchmark())
    grid = table.cells().set_index("method")
    # Single-DARTS never ran on ImageNet16-120: an empty cell, not an error or a dropped row.
    assert grid.loc["Single-DARTS", "ImageNet16-120 test"] == ""
    assert grid.loc["Single-DARTS", "seeds"] == "3"
    assert grid.loc["DARTS", "seeds"] == "2–3"  # 3 seeds on CIFAR, 2 on ImageNet16-120
    latex = table.to_latex()
    assert "\\pm" in latex and "ImageNet16-120 test" in latex and "\\toprule" in latex


def test_csv_holds_the_tidy_numbers(table1_root) -> None:
    table = main_table(load_results(table1_root), benchmark=TableBenchmark())
    parsed = pd.read_csv(io.StringIO(table.to_csv()))
    assert list(parsed.columns) == ["method", "dataset", "metric", "mean", "std", "n", "trials"]
    row = parsed[(parsed.method == "Single-DARTS") & (parsed.dataset == "cifar100")
                 & (parsed.metric == "test")].iloc[0]
    mean, std = sample_mean_std(FINAL[("Single-DARTS", "cifar100")])
    assert row["mean"] == pytest.approx(mean) and row["std"] == pytest.approx(std)


def test_generic_builder_adds_fields_that_vary_inside_a_row(tmp_path) -> None:
    trials = []
    values = {("softmax", 0): 10.0, ("softmax", 1): 20.0, ("sigmoid", 0): 40.0}
    for (activation, seed), value in values.items():
        config = SINGLE.replace(dataset="cifar10", activation=activation, seed=seed)
        trials.append(TrialSpec(f"{activation}{seed}", config,
                                [record(1, bench={"cifar10_test": value})]))
    write_study(tmp_path, "mine", trials)
    df = load_results(tmp_path)
    table = summary_table(df, rows=("method",))
    assert table.row_columns == ("method", "activation")  # never averages the two activations
    assert len(table.stats) == 2
    by_activation = table.stats.set_index("activation")
    assert by_activation.loc["softmax", "mean"] == (10.0 + 20.0) / 2
    assert by_activation.loc["sigmoid", "mean"] == 40.0
    assert math.isnan(by_activation.loc["sigmoid", "std"])  # one seed: std undefined
    assert "| Single-DARTS | sigmoid | 40.00 | 1 |" in table.to_markdown()
    # rows by any config field, and any numeric column as a metric
    by_seed = summary_table(df, rows=("seed",), metrics=("valid_acc",), add_varying=False)
    assert by_seed.stats.set_index("seed").loc["0", "n"] == 2
    with pytest.raises(ValueError, match="unknown row axis 'colour'"):
        summary_table(df, rows=("colour",))
    with pytest.raises(ValueError, match="unknown metric 'speed'"):
        summary_table(df, metrics=("speed",))


def _value(config) -> float:
    """A made-up final accuracy that depends on every ablation axis and the seed."""
    bonus = {"softmax": 0.0, "sigmoid": 1.0, "sigmoid*": 2.0}[config.activation]
    adam = 3.0 if config.arch_optimizer == "adam" else 0.0
    single = 10.0 if config.level == "single" else 0.0
    same = 5.0 if config.arch_data == "same" else 0.0
    return 60.0 + 100 * config.w_lr + bonus + adam + single + same + config.seed


@pytest.fixture(scope="module")
def paper_root(tmp_path_factory) -> Path:
    """Tables 4 and 5 run as one experiment (as ``study run paper`` would), CIFAR-10, 2 seeds."""
    root = tmp_path_factory.mktemp("paper")
    configs = [c for c in [*table4(), *table5()] if c.dataset == "cifar10" and c.seed < 2]
    unique = {json_key(c): c for c in configs}
    trials = [
        TrialSpec(f"t{i}", c, [record(1, bench={"cifar10_test": _value(c)})])
        for i, c in enumerate(unique.values())
    ]
    write_study(root, "paper", trials)
    return root


def json_key(config) -> tuple:
    return tuple(sorted(config.to_dict().items()))


def _expected(configs) -> tuple[float, float]:
    return sample_mean_std([_value(c) for c in configs])


def test_ablation_lr_picks_table_5a(paper_root) -> None:
    table = ablation_table(load_results(paper_root), "lr")
    assert table.row_columns == ("method", "lr")
    stats = table.stats.set_index(["method", "lr"])
    assert sorted(stats.index) == sorted(
        (m, lr) for m in ("DARTS", "Single-DARTS") for lr in ("0.001", "0.005", "0.025")
    )
    for lr in (0.001, 0.005, 0.025):
        ref = DARTS.replace(w_optimizer="sgd", w_lr=lr, arch_optimizer="sgd", arch_lr=lr,
                            dataset="cifar10")
        mean, std = _expected([ref.replace(seed=s) for s in (0, 1)])
        got = stats.loc[("DARTS", f"{lr:g}")]
        assert got["mean"] == pytest.approx(mean) and got["std"] == pytest.approx(std)
    assert "DARTS: fixed activation=softmax" in " ".join(table.notes)


def test_ablation_activation_and_optimizer_pick_tables_5b_5c(paper_root) -> None:
    df = load_results(paper_root)
    activation = ablation_table(df, "activation").stats.set_index(["method", "activation"])
    ref = SINGLE.replace(w_optimizer="sgd", w_lr=0.005, arch_optimizer="sgd", arch_lr=0.005,
                         dataset="cifar10")
    for name in ("softmax", "sigmoid", "sigmoid*"):
        mean, _ = _expected([ref.replace(activation=name, seed=s) for s in (0, 1)])
        assert activation.loc[("Single-DARTS", name), "mean"] == pytest.approx(mean)
    optimizer = ablation_table(df, "optimizer")
    rows = optimizer.stats.set_index(["method", "optimizer"])
    assert sorted(rows.index) == sorted(
        (m, o) for m in ("DARTS", "Single-DARTS") for o in ("SGD", "Adam")
    )
    assert list(optimizer.cells()["optimizer"][:2]) == ["SGD", "Adam"]  # paper order


def test_ablation_data_mode_picks_table_4(paper_root) -> None:
    table = ablation_table(load_results(paper_root), "data_mode")
    assert table.row_columns == ("data_mode",)
    assert table.stats["data_mode"].tolist() == [
        "different subsets, different batches",
        "same subset, different batches",
        "same subset, same batch",
    ]
    same = DARTS.replace(arch_data="same", w_optimizer="sgd", w_lr=0.005, arch_optimizer="sgd",
                         arch_lr=0.005, dataset="cifar10")
    mean, std = _expected([same.replace(seed=s) for s in (0, 1)])
    row = table.stats.iloc[1]
    assert row["mean"] == pytest.approx(mean) and row["std"] == pytest.approx(std)
    with pytest.raises(ValueError, match="unknown ablation axis 'colour'"):
        ablation_table(load_results(paper_root), "colour")


def test_paper_tables_lists_the_axes_that_vary(paper_root, table1_root) -> None:
    titles = [t.title for t in paper_tables(load_results(paper_root))]
    assert len(titles) == 6 and "Table 4" in titles[1] and titles[-1].startswith("Collapse")
    only_main = paper_tables(load_results(table1_root))  # table1 varies no ablation axis
    assert [t.title.split()[0] for t in only_main] == ["NAS-Bench-201", "Collapse:"]


def test_collapse_table_counts_parameter_free_ops(tmp_path) -> None:
    # seed 0 collapses from epoch 2 on; seed 1 ends healthy; seed 2 collapses at epoch 3.
    genotypes = {0: [HEALTHY, COLLAPSED, COLLAPSED], 1: [COLLAPSED, COLLAPSED, HEALTHY],
                 2: [COLLAPSED, HEALTHY, COLLAPSED]}
    trials = [
        TrialSpec(f"s{seed}", DARTS.replace(dataset="cifar10", seed=seed),
                  [record(e + 1, genotype=g) for e, g in enumerate(gs)])
        for seed, gs in genotypes.items()
    ]
    write_study(tmp_path, "c", trials)
    stats = collapse_table(load_results(tmp_path)).stats.set_index("metric")
    # COLLAPSED has 4 parameter-free ops of 6, HEALTHY 1.
    mean, std = sample_mean_std([4.0, 1.0, 4.0])
    assert stats.loc["n_param_free", "mean"] == pytest.approx(mean)
    assert stats.loc["n_param_free", "std"] == pytest.approx(std)
    assert stats.loc["collapsed", "mean"] == pytest.approx(2 / 3)
    assert stats.loc["collapse_epoch", "mean"] == pytest.approx((2 + 3) / 2)
    assert stats.loc["collapse_epoch", "n"] == 2


def test_frames_missing_config_columns_still_render(table1_root) -> None:
    """A frame without some axes (e.g. from an older schema) labels what it can, never fails."""
    df = load_results(table1_root).drop(columns=["activation", "w_lr", "arch_lr", "order"])
    tables = paper_tables(df)
    assert tables[0].title.startswith("NAS-Bench-201")
    grid = tables[0].cells()
    # without ``order`` the method label falls back to the raw values it has
    assert "bi/split/None" in set(grid.iloc[:, 0]) and "| Optimal |" in tables[0].to_markdown()
    for table in tables:
        table.to_latex()
        table.to_csv()


def test_darts_genotypes_count_the_normal_cell() -> None:
    from analysis.collapse import count_param_free

    genotype = (
        "Genotype(normal=[('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
        "('max_pool_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_5x5', 2), ('skip_connect', 3), "
        "('sep_conv_5x5', 1)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
    )
    assert count_param_free(genotype, "darts") == (5, 8)  # 3 skip + max + avg; reduce ignored
    assert count_param_free(HEALTHY, "nb201") == (1, 6)
    assert count_param_free(None, "nb201") is None
    with pytest.raises(ValueError):
        count_param_free("|bogus~0|", "nb201")


def test_ablation_titles_name_the_axis_and_the_paper_table_only_on_its_settings(
        tmp_path) -> None:
    """Table 4's data modes at the paper's settings call themselves paper Table 4; the same
    modes after 2 epochs are an ablation over the data mode, and the notes say why not."""
    modes = [DARTS.replace(arch_data="split"), DARTS.replace(arch_data="same"),
             SINGLE.replace(activation="softmax", arch_weight_decay=1e-3)]
    paper = [m.replace(w_optimizer="sgd", w_lr=0.005, arch_optimizer="sgd", arch_lr=0.005,
                       dataset="cifar10") for m in modes]
    for name, configs in (("paper", paper), ("short", [c.replace(epochs=2) for c in paper])):
        trials = [TrialSpec(f"{name}{i}", c, [record(1, bench={"cifar10_test": 50.0 + i})])
                  for i, c in enumerate(configs)]
        write_study(tmp_path / name, name, trials)
    table = ablation_table(load_results(tmp_path / "paper"), "data_mode")
    assert table.title.startswith("Ablation: data mode (paper Table 4): ")
    assert any("settings match paper Table 4" in note for note in table.notes)
    short = ablation_table(load_results(tmp_path / "short"), "data_mode")
    assert short.title.startswith("Ablation: data mode: ") and "paper" not in short.title
    assert "not paper Table 4's settings: epochs=2 (paper: 50)." in short.notes
    # the same rows, either way: only the title and notes differ
    assert short.stats["mean"].tolist() == table.stats["mean"].tolist() == [50.0, 51.0, 52.0]


def test_ablation_lr_is_table_5a_only_with_sgd_and_the_papers_lrs(tmp_path) -> None:
    """Table 5a: SGD for α, learning rates among 0.001 / 0.005 / 0.025."""
    def lr_rows(lrs, arch_optimizer="sgd"):
        return [DARTS.replace(w_optimizer="sgd", w_lr=lr, w_lr_min=lr / 25,
                              arch_optimizer=arch_optimizer, arch_lr=lr, dataset="cifar10")
                for lr in lrs]

    cases = {"a": lr_rows((0.001, 0.025)), "b": lr_rows((0.001, 0.01)),
             "c": lr_rows((0.001, 0.025), "adam")}
    for name, configs in cases.items():
        trials = [TrialSpec(f"{name}{i}", c.replace(w_lr_min=0.00004),
                            [record(1, bench={"cifar10_test": 60.0})])
                  for i, c in enumerate(configs)]
        write_study(tmp_path / name, name, trials)
    titles = {n: ablation_table(load_results(tmp_path / n), "lr") for n in cases}
    assert titles["a"].title.startswith("Ablation: learning rate (paper Table 5a): ")
    assert titles["b"].title.startswith("Ablation: learning rate: ")
    assert "not paper Table 5a's settings: lr=0.01 (paper: 0.001 or 0.005 or 0.025)." in (
        titles["b"].notes)
    assert titles["c"].title.startswith("Ablation: learning rate: ")
    assert "not paper Table 5a's settings: arch_optimizer=adam (paper: sgd)." in titles["c"].notes


def test_collapse_table_counts_skip_pool_none_and_both_criteria(tmp_path) -> None:
    # all-skip (skip-dominant and collapsed), 3 skip + 1 none (collapsed, not skip-dominant),
    # HEALTHY (1 skip): per trial (n_skip, n_pool, n_none) = (6,0,0), (3,0,1)+... see below.
    all_skip = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
    mixed = "|skip_connect~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_1x1~2|"
    finals = {0: all_skip, 1: mixed, 2: HEALTHY}
    trials = [TrialSpec(f"s{seed}", DARTS.replace(dataset="cifar10", seed=seed),
                        [record(1, genotype=g)]) for seed, g in finals.items()]
    write_study(tmp_path, "c", trials)
    table = collapse_table(load_results(tmp_path))
    stats = table.stats.set_index("metric")
    expected = {  # per trial: all_skip, mixed, HEALTHY
        "n_skip": [6.0, 3.0, 1.0], "n_pool": [0.0, 1.0, 0.0], "n_none": [0.0, 1.0, 0.0],
        "n_param_free": [6.0, 5.0, 1.0], "collapsed": [1.0, 1.0, 0.0],
        "skip_dominant": [1.0, 0.0, 0.0],
    }
    for metric, values in expected.items():
        mean, std = sample_mean_std(values)
        assert stats.loc[metric, "mean"] == pytest.approx(mean), metric
        assert stats.loc[metric, "std"] == pytest.approx(std), metric
    assert "n_skip" in table.cells().columns[2] or "n_skip" in " ".join(table.cells().columns)
    notes = " ".join(table.notes)
    assert "collapsed 54.4 %" in notes and "skip_dominant 1.7 %" in notes


def test_base_rates_over_the_shipped_table_equal_an_independent_count() -> None:
    """Enumerate all 5^6 NAS-Bench-201 cells independently of the shipped table."""
    from itertools import product

    from analysis.collapse import nb201_base_rates

    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    cells = list(product(ops, repeat=6))
    assert len(cells) == 15625
    free = sum(sum(op in ("none", "skip_connect", "avg_pool_3x3") for op in c) > 3 for c in cells)
    skip = sum(sum(op == "skip_connect" for op in c) > 3 for c in cells)
    # by hand: sum_{k=4}^{6} C(6,k) 3^k 2^(6-k) = 4860 + 2916 + 729; C(6,k) 4^(6-k) = 240 + 24 + 1
    assert (free, skip) == (8505, 265)
    rates = nb201_base_rates()
    assert rates == {"collapsed": 8505 / 15625, "skip_dominant": 265 / 15625}
    assert round(100 * rates["collapsed"], 1) == 54.4


def test_main_table_shows_the_papers_table_1_rows_only_when_asked(table1_root) -> None:
    df = load_results(table1_root)
    plain = main_table(df, benchmark=TableBenchmark())
    assert not plain.stats["method"].str.endswith("(reported)").any()
    assert not any("reported" in note for note in plain.notes)
    table = main_table(df, benchmark=TableBenchmark(), with_reported=True)
    methods = list(dict.fromkeys(table.stats["method"]))
    assert methods == ["DARTS", "Single-DARTS", "RSPS (reported)", "DARTS (reported)",
                       "GDAS (reported)", "SETN (reported)", "ENAS (reported)",
                       "CDARTS (reported)", "DARTS- (reported)", "Single-DARTS (reported)",
                       OPTIMAL]
    gdas = cell(table, "GDAS (reported)", "imagenet16-120", "valid")
    assert (gdas["mean"], gdas["std"]) == (41.70, 1.26) and pd.isna(gdas["trials"])
    markdown = table.to_markdown()
    assert "| CDARTS (reported) | 91.13 ± 0.44 | 94.02 ± 0.31 |" in markdown
    assert any("Table 1" in note and "reported" in note for note in table.notes)
    # our rows are untouched by the reported ones
    assert cell(table, "DARTS", "cifar10", "test")["mean"] == pytest.approx(
        sample_mean_std(FINAL[("DARTS", "cifar10")])[0])
    latex = table.to_latex()
    assert latex.count("\\midrule") == 3  # header, before the reported rows, before Optimal


def test_a_field_set_from_the_axis_rides_along_and_is_named(tmp_path) -> None:
    """lr rows whose w_lr_min scales with the lr (lr / 25), plus a 0.005 trial with w_lr_min
    0.001 (another table's reference): the slice keeps the three scaled rows."""
    def sgd(lr, lr_min):
        return DARTS.replace(w_optimizer="sgd", w_lr=lr, w_lr_min=lr_min, arch_optimizer="sgd",
                             arch_lr=lr, dataset="cifar10")

    configs = {"r1": sgd(0.001, 0.00004), "r5": sgd(0.005, 0.0002), "r25": sgd(0.025, 0.001),
               "ref": sgd(0.005, 0.001)}
    values = {"r1": 10.0, "r5": 20.0, "r25": 30.0, "ref": 99.0}
    write_study(tmp_path, "lr", [TrialSpec(k, c, [record(1, bench={"cifar10_test": values[k]})])
                                 for k, c in configs.items()])
    table = ablation_table(load_results(tmp_path), "lr")
    assert table.stats["mean"].tolist() == [10.0, 20.0, 30.0]  # not the reference's 99
    assert ("DARTS: w_lr_min varies with lr (0.001: 4e-05; 0.005: 0.0002; 0.025: 0.001)"
            in table.notes)
