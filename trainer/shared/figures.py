"""matplotlib on the Agg backend (no display needed) and PNG files written through
tf.io.gfile, so that plots go to local or gs:// paths alike."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import tensorflow as tf  # noqa: E402


def save_figure(fig: plt.Figure, path: str) -> None:
    """Writes a PNG through tf.io.gfile (local or gs://) and closes the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())
