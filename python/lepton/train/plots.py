"""Loss and accuracy curves of a training history as a PNG (matplotlib: the `plot` extra)."""

import sys

__all__ = ["plot_history"]


def plot_history(history, path, title=None):
    """Draws loss (and every *accuracy figure) per epoch, training beside validation, into `path`.
    Without matplotlib prints one note to stderr and returns False."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"note: matplotlib is not installed, so {path} was not drawn (pip install 'lepton[plot]')",
              file=sys.stderr)
        return False
    panels = ["loss"] + sorted(k for k in history if k.endswith("accuracy") and not k.startswith("val_"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, key in zip(axes[0], panels):
        for name, style in ((key, "-o"), (f"val_{key}", "-s")):
            values = history.get(name)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
