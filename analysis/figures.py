"""The paper's figures from a results frame (``analysis.results.load_results``).

* ``stability_figure`` — Figure 1: NAS-Bench-201 test accuracy of the derived cell per epoch,
  one panel per dataset; per search a thin line per seed (trial) and a thick line for the mean
  over seeds (no ± std band: with bimodal seeds it ran below 0 % and above 100 %); the y axis
  stays within [0, 100] %.
* ``alpha_trajectories_figure`` — Figure A-1: activated α of every op on every edge over epochs,
  for one trial per search (or the trials asked for); all panels share one y scale unless
  ``shared_y=False``.
* ``operator_gradients_figure`` — Figure 3: mean ∂L/∂α per op (over edges and seeds) per epoch.
* ``gradient_correlation_figure`` — Figure 2: the gradient-correlation probe (cosine and inner
  product of ∇w on the w batch and on the α batch) per epoch, mean ± std over seeds.
* ``tuning_figure`` — ``study tune``'s samples: per tuned hyperparameter, each complete
  sample's objective against the hyperparameter's value, one series per tuned cell.
* ``save_figures`` writes them as PNG files: the four paper figures from the rows of ``study
  run`` (rows of ``study tune`` have sampled hyperparameters and are left out), and the tuning
  figure when there are rows of ``study tune``.

Searches are told apart by ``analysis.frame.series_labels`` (the method plus every other config
field that varies), so two different searches are never averaged together; seeds are averaged.
A missing dataset, metric or α never raises: the panel says ``no data: <why>`` instead.

Every builder returns a ``matplotlib.figure.Figure`` made directly (no pyplot), so nothing global
changes: the user's backend and pyplot's figure list are left alone, and ``savefig`` renders with
Agg. Only matplotlib, pandas and numpy are imported (no torch, no ray).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.ticker import MaxNLocator

from analysis.alphas import alpha_long
from analysis.frame import bench_column, series_labels, with_labels
from analysis.tuning import (
    TUNE_STUDY,
    Tuning,
    sidecar_rank,
    tuned_params,
    tuning_mask,
    tuning_samples,
)
from analysis.tuning import uses_test_split as on_test_split
from search_spaces.genotypes import DARTS_OPS, NB201_OPS
from trainables import records as R
from trainables.config import FIELD_DOCS

DPI = 120
SERIES = "series"  # the legend label column added by ``_labelled``
EPOCH_AXIS = "search epoch (number of passes)"
ACC_AXIS = "NAS-Bench-201 test accuracy (%)"
ALPHA_AXIS = "activated α (unitless)"
GRAD_AXIS = "mean ∂L/∂α (loss per unit α)"
PROBES = {
    R.GRAD_COSINE: "cos(∇w L(w batch), ∇w L(α batch))\n(unitless)",
    R.GRAD_INNER: "⟨∇w L(w batch), ∇w L(α batch)⟩\n((loss per unit w)²)",
}
ACC_LIMITS = (0.0, 100.0)  # accuracy panels never show below 0 % or above 100 %
SEED_LINE: dict[str, Any] = {"linewidth": 0.8, "alpha": 0.35}  # stability: one thin, faint line per seed
MEAN_LINE: dict[str, Any] = {"linewidth": 2.5, "marker": "."}  # stability: the thick mean line over seeds
TITLE_WIDTH = 48  # characters per line of a panel title
MAX_EDGE_COLUMNS = 7  # α trajectories: a DARTS cell's 14 edges wrap into two rows
# One colour per operation in every figure: the 10 ops of both spaces are tab10's 10 colours.
OP_COLOURS = {
    op: tuple(colormaps["tab10"](k))
    for k, op in enumerate(dict.fromkeys((*NB201_OPS, *DARTS_OPS)))
}


# ---------------------------------------------------------------------- the four figures
def stability_figure(df: pd.DataFrame) -> Figure:
    """Paper Figure 1: per dataset, the derived cell's benchmark test accuracy per epoch.

    One panel per dataset. Per series label, in the series' colour: a thin, faint line per trial
    (seed) with its own values, and a thick line with the mean over the trials reporting at each
    epoch (the one in the legend). No ± std band: the seeds themselves show the spread, which
    may be bimodal. The y axis is clipped to [0, 100] %. A dataset whose benchmark column is all
    NaN (e.g. the DARTS space) shows the supernet's ``valid_acc`` instead, and the y label says
    so.
    """
    title = "Stability of the searched architecture (paper Figure 1)"
    frame = _labelled(df)
    datasets = _datasets(frame)
    if not datasets:
        why = "no results" if frame.empty else "no dataset recorded"
        return _no_data_figure(title, why, EPOCH_AXIS, ACC_AXIS)
    fig, axes = _panels(len(datasets), title)
    colours = _colours(frame[SERIES])
    for ax, dataset in zip(axes, datasets, strict=True):
        rows = frame[frame["dataset"] == dataset]
        column = bench_column(dataset, "test")
        if _has_values(rows, column):
            value, ylabel, name = column, ACC_AXIS, column
        else:
            value, ylabel = R.VALID_ACC, "supernet valid accuracy (%)\n(no NAS-Bench-201 value)"
            name = f"{R.VALID_ACC} ({column} all NaN)"
        _label(ax, EPOCH_AXIS, ylabel, f"{dataset}: {name}")
        _series_lines(
            ax, rows, value, colours, why=f"{column} and {R.VALID_ACC} all NaN", per_seed=True
        )
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, ACC_LIMITS[0]), min(high, ACC_LIMITS[1]))
    return fig


def alpha_trajectories_figure(
    df: pd.DataFrame, trial_ids: Sequence[str] | None = None, *, shared_y: bool = True
) -> Figure:
    """Paper Figure A-1: activated α per op over epochs, one subplot per edge.

    One block of subplots per trial (a row titled with its series label and seed): the normal
    cell's edges, then (DARTS) the reduction cell's; one line per op, op names in the block's
    legend. By default the first trial (lowest seed, then trial_id) of every series label;
    ``trial_ids`` picks trials instead, in that order (an unknown id raises ``ValueError``).

    With ``shared_y`` (the default) every panel of the figure has the same y limits (the range
    of all drawn α plus a 5 % margin), so a difference of 0.01 looks as small on one edge as on
    another; ``shared_y=False`` lets each panel scale to its own data.
    """
    title = "Activated α per operation over the search (paper Figure A-1)"
    frame = _labelled(df)
    if frame.empty:
        return _no_data_figure(title, "no results", EPOCH_AXIS, ALPHA_AXIS)
    trials = _chosen_trials(frame, trial_ids)
    keys = pd.MultiIndex.from_frame(trials[["experiment", "trial_id"]])
    picked = frame[pd.MultiIndex.from_frame(frame[["experiment", "trial_id"]]).isin(keys)]
    long = alpha_long(picked, "alpha")
    long = long[long["weight"].notna()]
    if long.empty:
        return _no_data_figure(title, "no α recorded for these trials", EPOCH_AXIS, ALPHA_AXIS)
    blocks = [
        long[(long["experiment"] == t.experiment) & (long["trial_id"] == t.trial_id)]
        for t in trials.itertuples()
    ]
    layouts = [_edge_layout(block) for block in blocks]
    ncols = max(max((n for _, n in layout), default=1) for layout in layouts)
    ncols = min(ncols, MAX_EDGE_COLUMNS)
    heights = [max(sum(math.ceil(n / ncols) for _, n in layout), 1) for layout in layouts]
    fig = Figure(figsize=(2.6 * ncols + 1.8, 2.3 * sum(heights) + 0.6), layout="constrained")
    fig.suptitle(title)
    subfigs = fig.subfigures(len(blocks), 1, height_ratios=heights, squeeze=False)[:, 0]
    for subfig, block, trial, height in zip(
        subfigs, blocks, trials.itertuples(), heights, strict=True
    ):
        subfig.suptitle(f"{trial.series}, seed {trial.seed} (trial {trial.trial_id})")
        _trajectory_block(subfig, block, height, ncols)
    if shared_y:
        limits = _padded(float(long["weight"].min()), float(long["weight"].max()))
        for ax in fig.axes:
            ax.set_ylim(*limits)
    return fig


def operator_gradients_figure(df: pd.DataFrame) -> Figure:
    """Paper Figure 3: mean ∂L/∂α per op over epochs, averaged over edges, then over seeds.

    One panel per series label (a second row for the DARTS reduction cell); one line per op.
    """
    title = "Mean architecture gradient per operation (paper Figure 3)"
    frame = _labelled(df)
    if frame.empty:
        return _no_data_figure(title, "no results", EPOCH_AXIS, GRAD_AXIS)
    long = alpha_long(frame, "alpha_grad", columns=(SERIES,))
    long = long[long["grad"].notna()]
    if long.empty:
        return _no_data_figure(title, "no α-gradient recorded", EPOCH_AXIS, GRAD_AXIS)
    per_trial = long.groupby(
        [SERIES, "cell", "experiment", "trial_id", "epoch", "op"], sort=False, observed=True
    )["grad"].mean()  # over edges
    mean = per_trial.groupby([SERIES, "cell", "epoch", "op"], sort=False).mean().reset_index()
    labels = sorted(mean[SERIES].unique())
    cells = [c for c in ("normal", "reduce") if (mean["cell"] == c).any()]
    fig, axes = _panels(len(labels) * len(cells), title, ncols=len(labels))
    colours = OP_COLOURS
    for k, ax in enumerate(axes):
        cell, label = cells[k // len(labels)], labels[k % len(labels)]
        _label(ax, EPOCH_AXIS, GRAD_AXIS, f"{label}: {cell} cell")
        panel = mean[(mean[SERIES] == label) & (mean["cell"] == cell)]
        if panel.empty:
            _no_data(ax, f"no {cell}-cell α-gradient")
            continue
        for op in pd.unique(panel["op"]):
            line = panel[panel["op"] == op].sort_values("epoch")
            ax.plot(line["epoch"], line["grad"], label=op, color=colours[op], marker=".")
        ax.legend(fontsize="small")
    return fig


def gradient_correlation_figure(df: pd.DataFrame) -> Figure:
    """Paper Figure 2: the gradient-correlation probe per epoch, mean ± std over seeds.

    Left ``grad_cosine``, right ``grad_inner``; one line per series label. Rows whose probe value
    is NaN (probe off) are ignored; a series with none left is not drawn and not in the legend.
    """
    title = "Gradient correlation of the w and α batches (paper Figure 2)"
    frame = _labelled(df)
    fig, axes = _panels(len(PROBES), title)
    colours = _colours(frame[SERIES])
    for ax, (column, ylabel) in zip(axes, PROBES.items(), strict=True):
        _label(ax, EPOCH_AXIS, ylabel, column)
        if frame.empty:
            _no_data(ax, "no results")
        else:
            _series_lines(ax, frame, column, colours, why=f"{column} all NaN (probe off?)")
    return fig


FIGURES = {
    "stability": stability_figure,
    "alpha_trajectories": alpha_trajectories_figure,
    "operator_gradients": operator_gradients_figure,
    "gradient_correlation": gradient_correlation_figure,
}


def save_figures(
    df: pd.DataFrame, out_dir: str | Path, tuning: Tuning | None = None
) -> dict[str, Path]:
    """Write the figures as ``out_dir/<name>.png`` (created if missing), ``DPI`` dots per inch;
    returns {name: path}.

    The four paper figures (stability, alpha_trajectories, operator_gradients,
    gradient_correlation) are drawn from the rows of ``study run`` — with none at all (empty
    results) their panels say ``no data``; when every row is one of ``study tune`` they are not
    written. ``tuning`` (``tuning_figure``, from ``tuning`` = the sidecars,
    ``store.read_tuning``) is written when ``df`` has rows of ``study tune``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tuned = tuning_mask(df)
    figures: dict[str, Figure] = {}
    if not tuned.any() or not tuned.all():
        searches = df[~tuned]
        figures.update({name: build(searches) for name, build in FIGURES.items()})
    if tuned.any():
        figures["tuning"] = tuning_figure(df[tuned], tuning)
    paths: dict[str, Path] = {}
    for name, fig in figures.items():
        path = out / f"{name}.png"
        fig.savefig(path, dpi=DPI)
        paths[name] = path
    return paths


def tuning_figure(df: pd.DataFrame, tuning: Tuning | None = None) -> Figure:
    """``study tune``'s samples (``analysis.tuning.tuning_samples``): one panel per tuned
    hyperparameter (``tuned_params``), each complete sample's objective (y, in its column's
    unit) against the hyperparameter's value (x), one colour and marker per tuned cell.

    The x axis is logarithmic where the sidecar's parameter says ``log: true``; a categorical
    parameter (sidecar ``choices``, or non-numeric values) is drawn at positions 0, 1, ... with
    the choices as tick labels, each cell's points shifted a little so they do not hide each
    other. Samples without an objective value (NaN, e.g. diverged) are not drawn; the title
    says how many there are, names the objective and adds "(NAS-Bench-201 test split)" when it
    is a benchmark test accuracy.
    """
    samples = tuning_samples(df, tuning)
    complete = samples[samples["complete"].astype(bool)] if not samples.empty else samples
    valued = complete[complete["value"].notna()]
    objectives = sorted({str(o) for o in samples["objective"] if str(o)})
    name = " / ".join(objectives) or "objective"
    test_split = " (NAS-Bench-201 test split)" if any(map(on_test_split, objectives)) else ""
    rules = sorted({f"{e} epoch, {d}" for e, d in zip(
        samples["tune_epoch"], samples["tune_direction"], strict=True)})
    title = f"Tuning: {name}{test_split} per tuned hyperparameter"
    units = {R.FIELDS[o].unit if o in R.FIELDS else "" for o in objectives}
    unit = f" ({units.pop()})" if len(units) == 1 and "" not in units else ""
    ylabel = f"{name}{unit}\n({'; '.join(rules)})" if rules else name
    params = tuned_params(df, tuning)
    names = list(dict.fromkeys(p for cell in params.values() for p in cell))
    if valued.empty or not names:
        why = ("no tuning samples" if samples.empty else "no tuned hyperparameter found"
               if not names else "no complete tuning sample with an objective value")
        return _no_data_figure(title, why, "hyperparameter value", ylabel)
    missing = len(complete) - len(valued)
    lines = [title, "one point per complete sample" + (
        f"; {missing} without a value (NaN, e.g. diverged) not drawn" if missing else "")]
    width = int(TITLE_WIDTH * 1.25 * min(len(names), 3))  # characters across the figure
    fig, axes = _panels(len(names), "\n".join(textwrap.fill(line, width) for line in lines))
    cells = sorted(valued.groupby(["experiment", TUNE_STUDY], sort=True).groups,
                   key=lambda c: (str(c[0]), sidecar_rank(tuning, str(c[0]), str(c[1]))))
    several = len({experiment for experiment, _ in cells}) > 1
    colours = _colours(range(len(cells)))
    for ax, param in zip(axes, names, strict=True):
        spec = _param_spec(tuning, valued, param)
        tuning_cells = [c for c in cells if param in params.get((str(c[0]), str(c[1])), [])]
        _tuning_panel(ax, valued, param, spec, tuning_cells, cells, several, colours)
        ax.set_ylabel(ylabel)
    return fig


# ---------------------------------------------------------------------- tuning helpers
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")  # one per tuned cell, cycling
DODGE = 0.3  # total width (in category positions) over which cells' categorical points spread


def _param_spec(tuning: Tuning | None, samples: pd.DataFrame, param: str) -> dict[str, object]:
    """The sidecars' description of ``param`` (``low``/``high``/``log`` or ``choices``), merged
    over experiments (log if any says so; choices in first-seen order), plus the sampled values
    that are not numbers as choices."""
    spec: dict[str, object] = {"log": False}
    choices: list[object] = []
    for payload in (tuning or {}).values():
        found = (payload.get("params") or {}).get(param)
        if not isinstance(found, dict):
            continue
        spec["log"] = bool(spec["log"]) or bool(found.get("log"))
        choices += [c for c in found.get("choices") or [] if c not in choices]
    values = samples[param].dropna() if param in samples else pd.Series([], dtype=object)
    numeric = pd.to_numeric(values, errors="coerce").notna().all() and not (
        values.map(lambda v: isinstance(v, bool | np.bool_ | str)).any())
    if choices or not numeric:
        choices += [v for v in pd.unique(values) if v not in choices]
        spec["choices"] = choices
    return spec


def _tuning_panel(
    ax: Axes,
    samples: pd.DataFrame,
    param: str,
    spec: dict[str, object],
    drawn: list[tuple[object, object]],
    cells: list[tuple[object, object]],
    several: bool,
    colours: dict[str, tuple[float, ...]],
) -> None:
    """One hyperparameter's panel: a scatter series per cell in ``drawn`` (colour and marker
    by the cell's position in ``cells``)."""
    choices = spec.get("choices")
    log = bool(spec.get("log")) and not choices
    unit = FIELD_DOCS[param][0] if param in FIELD_DOCS else ""
    xlabel = f"{param} ({', '.join(u for u in (unit, 'log scale' if log else '') if u)})"
    xlabel = xlabel.removesuffix(" ()")
    _label(ax, xlabel, "", param)
    if not drawn:
        _no_data(ax, f"no cell tunes {param}")
        return
    for rank, key in enumerate(drawn):
        k = cells.index(key)
        rows = samples[(samples["experiment"] == key[0]) & (samples[TUNE_STUDY] == key[1])]
        rows = rows[rows[param].notna()]
        label = str(rows["tune_cell"].iloc[0]) if len(rows) else str(key[1])
        label = f"{key[0]}: {label}" if several else label
        if isinstance(choices, list):
            position = {str(c): i for i, c in enumerate(choices)}
            shift = (rank - (len(drawn) - 1) / 2) * DODGE / max(len(drawn) - 1, 1)
            x = np.array([position[str(v)] for v in rows[param]], dtype=float) + shift
        else:
            x = pd.to_numeric(rows[param]).to_numpy(dtype=float)
        ax.scatter(x, rows["value"].to_numpy(dtype=float), color=colours[str(k)],
                   marker=MARKERS[k % len(MARKERS)], label=label, alpha=0.85)
    if isinstance(choices, list):
        ax.set_xticks(range(len(choices)), [str(c) for c in choices])
        ax.set_xlim(-0.5, len(choices) - 0.5)
    elif log:
        ax.set_xscale("log")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # long decimals must not collide
    ax.legend(fontsize="small")


# ---------------------------------------------------------------------- frame helpers
def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    """``with_labels(df)`` plus the legend label column ``SERIES``."""
    frame = with_labels(df)
    frame[SERIES] = series_labels(frame)
    return frame


def _datasets(frame: pd.DataFrame) -> list[str]:
    """The datasets present, sorted ([] for an empty frame or one without the column)."""
    if frame.empty or "dataset" not in frame:
        return []
    return sorted(str(v) for v in frame["dataset"].dropna().unique())


def _has_values(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and bool(frame[column].notna().any())


def _chosen_trials(frame: pd.DataFrame, trial_ids: Sequence[str] | None) -> pd.DataFrame:
    """One row (experiment, trial_id, series, seed) per trial to draw, in drawing order."""
    seed = frame["seed"] if "seed" in frame else pd.Series(pd.NA, index=frame.index)
    trials = (
        frame.assign(seed=seed)[["experiment", "trial_id", SERIES, "seed"]]
        .drop_duplicates(["experiment", "trial_id"])
        .sort_values([SERIES, "seed", "trial_id", "experiment"], na_position="last")
    )
    if trial_ids is None:
        return trials.drop_duplicates(SERIES).reset_index(drop=True)
    unknown = sorted(set(trial_ids) - set(trials["trial_id"]))
    if unknown:
        raise ValueError(f"no results for trial id(s) {unknown}")
    rank = {trial: k for k, trial in enumerate(trial_ids)}
    chosen = trials[trials["trial_id"].isin(rank)]
    return chosen.sort_values("trial_id", key=lambda s: s.map(rank), kind="stable").reset_index(
        drop=True
    )


def _edge_layout(block: pd.DataFrame) -> list[tuple[str, int]]:
    """(cell, number of edges) of each cell in a trial's long α frame, normal first."""
    return [(str(c), int(g["edge"].nunique())) for c, g in block.groupby("cell", sort=True)]


# ---------------------------------------------------------------------- drawing helpers
def _colours(values: Iterable[object]) -> dict[str, tuple[float, ...]]:
    """A stable colour per distinct value (sorted), cycling through tab10."""
    cmap = colormaps["tab10"]
    names = sorted({str(v) for v in values if not pd.isna(v)})  # type: ignore[arg-type]
    return {name: tuple(cmap(k % 10)) for k, name in enumerate(names)}


def _panels(n: int, title: str, *, ncols: int | None = None) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure with ``n`` panels (at most 3 a row unless ``ncols``)."""
    ncols = max(1, min(n, 3) if ncols is None else ncols)
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(5.0 * ncols, 3.8 * nrows), layout="constrained")
    fig.suptitle(title)
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig, axes[:n]


def _label(ax: Axes, xlabel: str, ylabel: str, title: str) -> None:
    """Axis labels and a (wrapped) panel title; epochs get integer ticks."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(textwrap.fill(title, TITLE_WIDTH), fontsize="medium")
    if xlabel == EPOCH_AXIS:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _no_data(ax: Axes, why: str) -> None:
    ax.text(0.5, 0.5, f"no data: {why}", ha="center", va="center", transform=ax.transAxes)


def _no_data_figure(title: str, why: str, xlabel: str, ylabel: str) -> Figure:
    fig, (ax,) = _panels(1, title)
    _label(ax, xlabel, ylabel, "no data")
    _no_data(ax, why)
    return fig


def _padded(low: float, high: float, margin: float = 0.05) -> tuple[float, float]:
    """(low, high) widened by ``margin`` of the span on each side (±``margin`` if no span)."""
    pad = (high - low) * margin or margin * max(abs(low), abs(high), 1.0)
    return low - pad, high + pad


def _series_lines(
    ax: Axes,
    frame: pd.DataFrame,
    value: str,
    colours: dict[str, tuple[float, ...]],
    why: str,
    *,
    per_seed: bool = False,
) -> None:
    """Per series label: the mean over trials of ``value`` per epoch. With ``per_seed``, first a
    thin line per trial (``SEED_LINE``, in the series' colour, label ``_<series> seed <seed>
    (trial <trial_id>)`` so the legend leaves it out), then the mean as a thick line
    (``MEAN_LINE``) and no band; otherwise the mean with a ±1 sample-std band (ddof=1) at epochs
    where ≥2 trials have a value. NaN values are ignored; a series without any value is not
    drawn. With nothing to draw, the panel says ``no data: why``."""
    keys = [c for c in ("experiment", "trial_id", "seed") if c in frame]
    data = frame[[SERIES, R.EPOCH, value, *keys]] if value in frame else frame.iloc[:0]
    data = data[data[value].notna()] if value in data else data
    if data.empty:
        _no_data(ax, why)
        return
    for label, rows in data.groupby(SERIES, sort=True):
        stats = rows.groupby(R.EPOCH)[value].agg(["mean", "std", "count"]).sort_index()
        x = stats.index.to_numpy(dtype=np.float64)
        colour = colours.get(str(label))
        if per_seed:
            _seed_lines(ax, rows, value, str(label), colour)
            ax.plot(x, stats["mean"].to_numpy(), color=colour, label=str(label), **MEAN_LINE)
            continue
        ax.plot(x, stats["mean"].to_numpy(), marker=".", color=colour, label=str(label))
        if (stats["count"] >= 2).any():
            half = stats["std"].where(stats["count"] >= 2).to_numpy(dtype=np.float64)
            low, high = stats["mean"].to_numpy() - half, stats["mean"].to_numpy() + half
            ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
    ax.legend(fontsize="small")


def _seed_lines(
    ax: Axes, rows: pd.DataFrame, value: str, label: str, colour: tuple[float, ...] | None
) -> None:
    """A thin line per trial of one series (by seed, then trial id): ``value`` per epoch."""
    trial_keys = [c for c in ("experiment", "trial_id") if c in rows]
    groups = rows.groupby(trial_keys, sort=False) if trial_keys else [((), rows)]
    trials = []
    for key, one in groups:
        seed = one["seed"].iloc[0] if "seed" in one else pd.NA
        trial_id = one["trial_id"].iloc[0] if "trial_id" in one else ""
        trials.append((pd.isna(seed), 0 if pd.isna(seed) else seed, str(trial_id), str(key), one))
    for _, seed, trial_id, _, one in sorted(trials, key=lambda t: t[:4]):
        one = one.sort_values(R.EPOCH)
        ax.plot(one[R.EPOCH].to_numpy(dtype=np.float64), one[value].to_numpy(dtype=np.float64),
                color=colour, label=f"_{label} seed {seed} (trial {trial_id})", **SEED_LINE)


def _trajectory_block(subfig: SubFigure, block: pd.DataFrame, nrows: int, ncols: int) -> None:
    """One trial's α trajectories: a subplot per (cell, edge), a line per op, one legend."""
    axes = list(subfig.subplots(nrows, ncols, squeeze=False).ravel())
    if block.empty:
        _label(axes[0], EPOCH_AXIS, ALPHA_AXIS, "no α")
        _no_data(axes[0], "no α recorded for this trial")
        for ax in axes[1:]:
            subfig.delaxes(ax)
        return
    ops = list(pd.unique(block["op"]))
    colours = OP_COLOURS
    used = 0
    for cell, rows in block.groupby("cell", sort=True):
        edges = list(pd.unique(rows["edge"]))
        start = used
        for k, edge in enumerate(edges):
            ax = axes[start + k]
            _label(ax, EPOCH_AXIS, ALPHA_AXIS, f"{cell} cell, edge {edge}")
            ax.xaxis.label.set_fontsize("small")
            ax.yaxis.label.set_fontsize("small")
            on_edge = rows[rows["edge"] == edge]
            for op in ops:
                line = on_edge[on_edge["op"] == op].sort_values(R.EPOCH)
                ax.plot(line[R.EPOCH], line["weight"], color=colours[op], label=op)
        used = start + math.ceil(len(edges) / ncols) * ncols
    for ax in axes[used:]:
        subfig.delaxes(ax)
    for k, ax in enumerate(axes[:used]):
        if not ax.lines:  # a row's spare slot
            subfig.delaxes(ax)
        elif k == 0:
            handles, names = ax.get_legend_handles_labels()
            subfig.legend(handles, names, loc="outside right upper", fontsize="small")
