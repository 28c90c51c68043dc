"""One look for the whole book: a colour per method, figure size and resolution for the book's column.

Every chapter calls :func:`use` once and takes its colours from :data:`COLORS`
(or :func:`color`), so a method has the same colour on every page.
"""
from __future__ import annotations

#: resolution of every figure (the book's column is about 700 px wide)
DPI = 150

#: width of a full-column figure, inches
WIDTH = 7.0

#: one colour per method or group, across the book (keys: the names tables and legends show)
COLORS: dict[str, str] = {
    # groups of samples
    "clean": "tab:blue",
    "mislabeled": "tab:red",
    # the learned detector, by how it was trained
    "LSTM detector": "tab:green",
    "in-domain": "tab:green",
    "fine-tuned": "#2ca58d",
    "off-the-shelf": "tab:orange",
    "shipped detector": "tab:olive",
    "shipped": "tab:olive",
    "adapted": "#6b8e23",
    "adapted detector": "#6b8e23",
    "detector (as shipped)": "tab:olive",
    "detector, whole run": "#c7c75a",
    "detector, raw length": "#8a8a1f",
    # the paper's other rows (Tables 1-3)
    "AUM": "tab:purple",
    "AUM (threshold samples)": "#9467bd",
    "Standard": "black",
    "Oracle": "#e6ab02",
    "DY-Bootstrap": "tab:brown",
    "Data Parameters": "tab:pink",
    "INCV": "tab:cyan",
    "DivideMix": "#1f3b73",
    "DM-AugDesc": "#5a7bbf",
    # practitioners' alternatives
    "cleanlab": "#7f7f7f",
    "cleanlab (5-fold)": "#7f7f7f",
    "forgetting events": "#bcbd22",
    "data maps": "#e377c2",
    "mean loss": "#8c564b",
    "EL2N": "#d62728",
    "CTRL": "#17becf",
}

#: the registry names of :mod:`mislabel.methods` and the name the book shows for each
METHOD_NAMES: dict[str, str] = {
    "standard": "Standard", "oracle": "Oracle", "aum": "AUM", "aum_threshold": "AUM (threshold samples)",
    "dy_bootstrap": "DY-Bootstrap", "data_parameters": "Data Parameters", "incv": "INCV",
    "detector": "LSTM detector", "shipped": "shipped detector", "cleanlab": "cleanlab",
    "forgetting": "forgetting events", "datamaps": "data maps", "mean_loss": "mean loss", "el2n": "EL2N",
    "ctrl": "CTRL",
}


def color(name: str) -> str:
    """The book's colour of a method or group, by its shown name or registry name.

    Raises
    ------
    KeyError
        For a name without a colour: add it to :data:`COLORS` so it keeps one colour across the book.
    """
    name = METHOD_NAMES.get(name, name)
    if name not in COLORS:
        raise KeyError(f"no book colour for {name!r}; add it to mislabel.book.style.COLORS")
    return COLORS[name]


def palette(names) -> dict[str, str]:
    """``{name: colour}`` for the names a figure shows (for seaborn's ``palette=``)."""
    return {n: color(n) for n in names}


def use() -> None:
    """Set matplotlib and seaborn for the book's column: DPI, font sizes legible at page width, a white grid."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    mpl.rcParams.update({
        "figure.dpi": DPI, "savefig.dpi": DPI, "figure.figsize": (WIDTH, WIDTH * 0.45),
        "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9,
        "ytick.labelsize": 9, "legend.fontsize": 9, "figure.titlesize": 12,
    })
