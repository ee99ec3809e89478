"""How numbers and methods read in the conclusion: 4 significant digits, intervals, seeds, and
the statistics' method codes in words."""

from __future__ import annotations

from evsys.conclusion.model import Group, PowerRow


def num(x: float) -> str:
    return f"{x:.4g}"


def p_text(p: float | None) -> str:
    return "–" if p is None else f"{p:.2g}"


def interval(lo: float, hi: float) -> str:
    return f"[{num(lo)}, {num(hi)}]"


def value_std(mean: float, std: float | None) -> str:
    return num(mean) + (f" ± {num(std)}" if std is not None else "")


def mean_std(group: Group) -> str:
    return value_std(group.mean, group.std)


def ci_text(ci: list[float] | None) -> str:
    return interval(*ci) if ci else "–"


def seeds_text(values: dict[str, float]) -> str:
    return ", ".join(f"{seed}: {num(value)}" for seed, value in values.items())


# evsys.conclusion.inference's method codes (conclusion.json keeps the codes)
METHOD_WORDS = {
    "paired_seeds_items": "paired by seed and by item",
    "paired_pooled_seeds_items": "paired by seed and by item, seed variance pooled over the arms",
    "unpaired_seeds_items": "paired by item, not by seed (the arms ran different seeds)",
    "welch_seed_means": "Welch's t-test on seed means (item sampling not counted)",
    "seeds_items": "over seeds and items",
}


def method_text(method: str | None) -> str:
    """A method code in words (an unknown code as it is)."""
    return METHOD_WORDS.get(method or "", method or "–")


def power_texts(rows: list[PowerRow]) -> list[str]:
    """Each power row as a sentence: the minimum detectable effect with how uncertain it is
    (the variance behind it comes from a few seeds), and the seeds a target needs."""
    lines = []
    for row in rows:
        if row.mde == 0:
            line = (
                f"{row.comparison}: no spread between seeds or items was seen, so the effect "
                f"it could detect is unknown ({row.n_seeds} seeds)"
            )
        else:
            spread = ""
            if row.mde_low is not None and row.mde_high is not None:
                spread = (
                    f" (95% range {num(row.mde_low)} to {num(row.mde_high)}: the variance it "
                    f"rests on is estimated from these seeds)"
                    if row.mde_high > row.mde_low * (1 + 1e-6)
                    else " (the seeds varied less than their items' noise: it rests on that "
                    "noise, known from the items)"
                )
            line = (
                f"{row.comparison}: detects about {num(row.mde)} at 80% power with "
                f"{row.n_seeds} seeds{spread}"
            )
        if row.target is not None:
            line += (
                f"; an effect of {num(row.target)} needs {row.seeds_needed} seeds per arm"
                if row.seeds_needed
                else f"; no number of seeds detects {num(row.target)} (score more items)"
            )
        lines.append(line)
    return lines
