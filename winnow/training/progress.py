"""Per-epoch progress bar (loss, img/s, ETA) and one summary line per epoch."""

from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    """A tqdm bar over images; silent when disabled (tests, non-main ranks)."""

    def __init__(self, total: int, *, description: str, enabled: bool) -> None:
        self.bar = tqdm(total=total, desc=description, unit="img", leave=False, disable=not enabled,
                        dynamic_ncols=True, file=sys.stderr)

    def update(self, count: int, *, loss: float, img_per_s: float) -> None:
        self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{img_per_s:.0f}", refresh=False)
        self.bar.update(count)

    def close(self) -> None:
        self.bar.close()


def summary_line(row: dict, *, epochs: int) -> str:
    """`epoch 3/10  train_loss 0.512  val_loss 0.430  val_macro_f1 0.871 ...`."""
    parts = [f"epoch {row['epoch']}/{epochs}"]
    for key, value in row.items():
        if key != "epoch":
            parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)
