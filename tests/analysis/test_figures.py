"""``analysis.figures`` on results folders written through the real writer (no Ray run, no torch)."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from builders import TrialSpec, nb201_alpha, record, write_study
from matplotlib.collections import PolyCollection

from analysis.figures import (
    alpha_trajectories_figure,
    gradient_correlation_figure,
    operator_gradients_figure,
    save_figures,
    stability_figure,
)
from analysis.results import load_results
from search_spaces.genotypes import DARTS_OPS, NB201_OPS
from trainables.config import SearchConfig

NAN = math.nan
DARTS = SearchConfig(level="bi", epochs=3)
SINGLE = SearchConfig(level="single", epochs=3)
# Per trial, per epoch 1..3: NAS-Bench-201 CIFAR-10 test accuracy, grad cosine, grad inner.
BENCH = {"d0": [80.0, 70.0, 60.0], "d1": [82.0, 74.0, 50.0], "s0": [85.0, 88.0, 90.0]}
BENCH_C10 = {"c0": [60.0, 70.0, 80.0], "c1": [64.0, 71.0, 86.0]}
COSINE = {"d0": [0.1, NAN, 0.05], "d1": [0.3, NAN, 0.15], "s0": [NAN] * 3}
INNER = {"d0": [2.0, 1.0, 0.5], "d1": [4.0, 3.0, 1.5], "s0": [9.0, 8.0, 7.0]}
SEEDS = {"d0": 0, "d1": 1, "s0": 0, "c0": 0, "c1": 1}


def alpha(trial: str, epoch: int) -> list[list[float]]:
    return nb201_alpha(epoch % 5, 0.2 + 0.1 * epoch + 0.01 * SEEDS[trial])


def alpha_grad(trial: str, epoch: int) -> list[list[float]]:
    """Distinct per trial, epoch, edge and op, so the averages are checkable."""
    return [
        [SEEDS[trial] + epoch / 10 + edge / 100 + op / 1000 for op in range(5)] for edge in range(6)
    ]


def trial(trial_id: str, config: SearchConfig, bench: dict[str, list[float]]) -> TrialSpec:
    records = [
        record(
            epoch,
            bench={"cifar10_test": bench[trial_id][epoch - 1]},
            alpha=alpha(trial_id, epoch),
            alpha_grad=alpha_grad(trial_id, epoch),
            grad_cosine=COSINE.get(trial_id, [NAN] * 3)[epoch - 1],
            grad_inner=INNER.get(trial_id, [NAN] * 3)[epoch - 1],
        )
        for epoch in (1, 2, 3)
    ]
    return TrialSpec(trial_id, config.replace(seed=SEEDS[trial_id]), records)


@pytest.fixture(scope="module")
def frame(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("study")
    write_study(root, "digits", [trial(t, DARTS if t[0] == "d" else SINGLE, BENCH) for t in BENCH])
    c10 = SINGLE.replace(dataset="cifar10")
    write_study(root, "c10", [trial(t, c10, BENCH_C10) for t in BENCH_C10])
    return load_results(root)


@pytest.fixture(scope="module")
def darts_frame(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("darts")
    records = []
    for epoch in (1, 2):
        values = record(epoch, valid_acc=40.0 + epoch, alpha=[[0.125] * 8] * 14)
        values["alpha_reduce"] = [[0.1 * epoch] * 8] * 14
        values["alpha_grad_normal"] = [[0.01 * epoch] * 8] * 14
        values["alpha_grad_reduce"] = [[-0.01 * epoch] * 8] * 14
        records.append(values)
    write_study(root, "d", [TrialSpec("x", SearchConfig(space="darts", seed=2), records)])
    return load_results(root)


def legend(container) -> list[str]:
    found = container.get_legend() if hasattr(container, "get_legend") else None
    found = found or (container.legends[0] if getattr(container, "legends", None) else None)
    assert found is not None, "no legend"
    return [text.get_text() for text in found.get_texts()]


def line(ax, label: str) -> np.ndarray:
    (match,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return np.asarray(match.get_ydata(), dtype=float)


def bands(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def assert_labelled(fig) -> None:
    assert fig.get_suptitle()
    assert fig.axes
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
        assert "(" in ax.get_ylabel() and "(" in ax.get_xlabel()  # units in parentheses


def render(fig) -> None:
    fig.savefig(io.BytesIO(), format="png", dpi=40)


# ---------------------------------------------------------------------- Figure 1
def test_stability_panels_legends_and_labels(frame) -> None:
    fig = stability_figure(frame)
    assert_labelled(fig)
    assert [ax.get_title() for ax in fig.axes] == [
        "cifar10: bench_cifar10_test",
        "digits: bench_cifar10_test",
    ]
    cifar10, digits = fig.axes
    assert legend(digits) == ["DARTS", "Single-DARTS"]
    assert legend(cifar10) == ["Single-DARTS"]
    assert digits.get_ylabel() == "NAS-Bench-201 test accuracy (%)"
    render(fig)


def series_lines(ax, label: str) -> tuple[object, list]:
    """The thick mean line of a series and its thin per-seed lines (same colour, label
    ``_<series> seed ...``, hidden from the legend), seeds in drawing order."""
    (mean,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    seeds = [ln for ln in ax.get_lines() if ln.get_label().startswith(f"_{label} seed ")]
    return mean, seeds


def seed_values(df: pd.DataFrame, trial_id: str) -> np.ndarray:
    """One trial's benchmark accuracy per epoch, by hand from the written rows."""
    rows = df[df.trial_id == trial_id].sort_values("epoch")
    return rows["bench_cifar10_test"].to_numpy(dtype=float)


def test_stability_draws_each_seed_thin_and_the_mean_thick_without_a_band(frame) -> None:
    cifar10, digits = stability_figure(frame).axes
    expected = {
        (digits, "DARTS"): ["d0", "d1"],
        (digits, "Single-DARTS"): ["s0"],
        (cifar10, "Single-DARTS"): ["c0", "c1"],
    }
    for ax in (cifar10, digits):
        assert bands(ax) == []  # no mean ± std band any more
        drawn = [k for k in expected if k[0] is ax]
        assert len(ax.get_lines()) == sum(len(expected[k]) + 1 for k in drawn)
    for (ax, label), trials in expected.items():
        mean, seeds = series_lines(ax, label)
        assert len(seeds) == len(trials)  # one thin line per seed, plus the mean
        by_hand = np.array([seed_values(frame, t) for t in trials])
        for seed_line, values in zip(seeds, by_hand, strict=True):
            assert np.allclose(seed_line.get_xdata(), [1, 2, 3])
            assert np.allclose(seed_line.get_ydata(), values)
            assert seed_line.get_color() == mean.get_color()
            assert seed_line.get_linewidth() < mean.get_linewidth()
            assert seed_line.get_alpha() is not None and seed_line.get_alpha() < 1
        assert np.allclose(mean.get_ydata(), by_hand.mean(axis=0))
    # The hand values are the numbers the trials were written with.
    assert np.allclose(series_lines(digits, "DARTS")[1][1].get_ydata(), BENCH["d1"])
    assert legend(digits) == ["DARTS", "Single-DARTS"]  # seed lines stay out of the legend


def test_stability_bimodal_seeds_stay_within_0_and_100(tmp_path) -> None:
    """One seed near 10 %, one near 90 % (touching 0 and 100): the old mean ± std band ran
    outside [0, 100]; now the y limits stay inside and the seeds show the two modes."""
    low, high = [10.0, 0.0, 10.0], [90.0, 100.0, 90.0]
    trials = [
        TrialSpec(t, SINGLE.replace(seed=seed), [
            record(e, bench={"cifar10_test": values[e - 1]}) for e in (1, 2, 3)])
        for t, seed, values in (("lo", 0, low), ("hi", 1, high))
    ]
    write_study(tmp_path, "bimodal", trials)
    df = load_results(tmp_path)
    (ax,) = stability_figure(df).axes
    bottom, top = ax.get_ylim()
    assert 0.0 <= bottom <= top <= 100.0
    assert (bottom, top) == (0.0, 100.0)  # every seed's value is still in view
    assert bands(ax) == []
    mean, seeds = series_lines(ax, "Single-DARTS")
    assert [list(s.get_ydata()) for s in seeds] == [low, high]
    assert np.allclose(mean.get_ydata(), [50.0, 50.0, 50.0])


def test_stability_falls_back_to_supernet_accuracy_without_benchmark(darts_frame) -> None:
    (ax,) = stability_figure(darts_frame).axes
    assert "supernet valid accuracy (%)" in ax.get_ylabel()
    assert ax.get_title() == "digits: valid_acc (bench_cifar10_test all NaN)"
    assert np.allclose(line(ax, "Single-DARTS"), [41.0, 42.0])  # default config: single level


# ---------------------------------------------------------------------- Figure A-1
def test_alpha_trajectories_default_trials_edges_and_ops(frame) -> None:
    fig = alpha_trajectories_figure(frame)
    assert_labelled(fig)
    titles = [sub.get_suptitle() for sub in fig.subfigs]
    # First trial per series label: lowest seed, then trial id ("c0" < "s0").
    assert titles == ["DARTS, seed 0 (trial d0)", "Single-DARTS, seed 0 (trial c0)"]
    first = fig.subfigs[0].axes
    assert [ax.get_title() for ax in first] == [
        f"normal cell, edge {e}" for e in ("1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2")
    ]
    assert legend(fig.subfigs[0]) == list(NB201_OPS)
    for op_index, op in enumerate(NB201_OPS):
        expected = [alpha("d0", e)[2][op_index] for e in (1, 2, 3)]
        assert np.allclose(line(first[2], op), expected)
    render(fig)


def test_alpha_trajectories_chosen_trials(frame) -> None:
    fig = alpha_trajectories_figure(frame, trial_ids=["s0", "d1"])
    titles = [sub.get_suptitle() for sub in fig.subfigs]
    assert titles == ["Single-DARTS, seed 0 (trial s0)", "DARTS, seed 1 (trial d1)"]
    with pytest.raises(ValueError, match="nope"):
        alpha_trajectories_figure(frame, trial_ids=["nope"])


def edge_scaled_frame(root) -> pd.DataFrame:
    """Two trials whose α moves by a different amount on every edge: by 0.01 per epoch on
    edge 0, up to 0.1 per epoch on edge 5 (trial b twice as much)."""
    def weights(scale: float, epoch: int) -> list[list[float]]:
        return [nb201_alpha(0, 0.2 + scale * step * epoch).pop() for step in
                (0.01, 0.02, 0.04, 0.06, 0.08, 0.1)]

    specs = [
        TrialSpec(t, cfg.replace(seed=0), [record(e, alpha=weights(scale, e)) for e in (1, 2)])
        for t, cfg, scale in (("a", SINGLE, 1.0), ("b", DARTS, 2.0))
    ]
    write_study(root, "scaled", specs)
    return load_results(root)


def test_alpha_trajectories_share_one_y_scale_by_default(tmp_path) -> None:
    df = edge_scaled_frame(tmp_path)
    fig = alpha_trajectories_figure(df)
    assert len(fig.axes) == 12  # two trials x six edges
    limits = {ax.get_ylim() for ax in fig.axes}
    assert len(limits) == 1
    (bottom, top), = limits
    drawn = np.concatenate([ln.get_ydata() for ax in fig.axes for ln in ax.get_lines()])
    assert bottom < drawn.min() and drawn.max() < top  # every value in view
    # By hand: on trial b, edge 5, epoch 2, α runs from (1 - 0.6) / 4 = 0.1 (the other ops)
    # to 0.2 + 2 * 0.1 * 2 = 0.6 (the favourite op).
    assert math.isclose(drawn.min(), 0.1) and math.isclose(drawn.max(), 0.6)
    assert math.isclose(bottom, 0.1 - 0.025) and math.isclose(top, 0.6 + 0.025)  # 5 % margin
    assert top - bottom < 1.0  # a 5 % margin, not a fixed [0, 1]
    render(fig)


def test_alpha_trajectories_free_y_scale_per_panel(tmp_path) -> None:
    df = edge_scaled_frame(tmp_path)
    fig = alpha_trajectories_figure(df, shared_y=False)
    limits = [ax.get_ylim() for ax in fig.axes]
    assert len(set(limits)) > 1
    spans = [top - bottom for bottom, top in limits]
    # Edge 0 of trial a spans 0.195..0.22 and fills its own panel; edge 5 of trial b 0.1..0.6.
    assert min(spans) < 0.05 < 0.5 < max(spans)


def test_alpha_trajectories_darts_has_a_reduce_block(darts_frame) -> None:
    fig = alpha_trajectories_figure(darts_frame)
    assert_labelled(fig)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 28
    assert titles[0] == "normal cell, edge 2<-0" and titles[-1] == "reduce cell, edge 5<-4"
    assert legend(fig.subfigs[0]) == list(DARTS_OPS)
    assert np.allclose(line(fig.axes[-1], "sep_conv_3x3"), [0.1, 0.2])
    render(fig)


# ---------------------------------------------------------------------- Figure 3
def test_operator_gradients_mean_over_edges_and_seeds(frame) -> None:
    fig = operator_gradients_figure(frame)
    assert_labelled(fig)
    assert [ax.get_title() for ax in fig.axes] == [
        "DARTS: normal cell",
        "Single-DARTS: normal cell",
    ]
    darts_ax, single_ax = fig.axes
    assert legend(darts_ax) == list(NB201_OPS)
    for k, op in enumerate(NB201_OPS):
        per_trial = np.array(
            [
                [np.mean([row[k] for row in alpha_grad(t, e)]) for e in (1, 2, 3)]
                for t in ("d0", "d1")
            ]
        )
        assert np.allclose(line(darts_ax, op), per_trial.mean(axis=0))
        single = [
            np.mean([alpha_grad(t, e)[edge][k] for t in ("s0", "c0", "c1") for edge in range(6)])
            for e in (1, 2, 3)
        ]
        assert np.allclose(line(single_ax, op), single)


def test_operator_gradients_darts_reduce_row(darts_frame) -> None:
    fig = operator_gradients_figure(darts_frame)
    assert [ax.get_title() for ax in fig.axes] == [
        "Single-DARTS: normal cell",
        "Single-DARTS: reduce cell",
    ]
    assert np.allclose(line(fig.axes[1], "none"), [-0.01, -0.02])
    assert legend(fig.axes[1]) == list(DARTS_OPS)


# ---------------------------------------------------------------------- Figure 2
def test_gradient_correlation_ignores_nan_probes(frame) -> None:
    fig = gradient_correlation_figure(frame)
    assert_labelled(fig)
    cosine, inner = fig.axes
    assert [cosine.get_title(), inner.get_title()] == ["grad_cosine", "grad_inner"]
    assert legend(cosine) == ["DARTS"]  # Single-DARTS has no probe value left
    assert legend(inner) == ["DARTS", "Single-DARTS"]
    darts_ax = cosine.get_lines()[0]
    assert np.allclose(darts_ax.get_xdata(), [1, 3])
    assert np.allclose(darts_ax.get_ydata(), [0.2, 0.1])
    assert np.allclose(line(inner, "DARTS"), [3.0, 2.0, 1.0])
    assert np.allclose(line(inner, "Single-DARTS"), INNER["s0"])
    assert len(bands(cosine)) == 1 and len(bands(inner)) == 1


# ---------------------------------------------------------------------- no data
BUILDERS = [
    stability_figure,
    alpha_trajectories_figure,
    operator_gradients_figure,
    gradient_correlation_figure,
]


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_empty_input_renders_no_data(frame, build) -> None:
    for empty in (frame.iloc[:0], pd.DataFrame()):
        fig = build(empty)
        assert_labelled(fig)
        assert any(t.startswith("no data: ") for t in texts(fig)), texts(fig)
        render(fig)


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_all_nan_quantities_render_no_data(frame, build) -> None:
    blank = frame.copy()
    for column in blank.columns:
        if column.startswith("bench_") or column in ("valid_acc", "grad_cosine", "grad_inner"):
            blank[column] = NAN
        elif column.startswith("alpha"):
            blank[column] = pd.Series([None] * len(blank), index=blank.index, dtype=object)
    fig = build(blank)
    assert_labelled(fig)
    assert texts(fig) and all(t.startswith("no data: ") for t in texts(fig)), texts(fig)
    assert not any(ax.get_lines() for ax in fig.axes)
    render(fig)


def test_save_figures_writes_four_pngs(frame, tmp_path) -> None:
    out = tmp_path / "nested" / "figures"
    before = frame.copy()
    paths = save_figures(frame, out)
    pd.testing.assert_frame_equal(frame, before)  # the caller's frame is left alone
    names = {"stability", "alpha_trajectories", "operator_gradients", "gradient_correlation"}
    assert set(paths) == names
    for name, path in paths.items():
        assert path == out / f"{name}.png"
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000, name
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.png" for n in names)


def test_save_figures_on_empty_results(frame, tmp_path) -> None:
    paths = save_figures(frame.iloc[:0], tmp_path)
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths.values())
