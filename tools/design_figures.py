"""The error rates, powers and run counts the docs print for example designs, each with its Monte Carlo
error, simulated by lrstudy-design's own code (lrstudy.analysis.design_check: the workflow's Walk, or
Welch's test with the configured multiplicity in a fixed design).

    python tools/design_figures.py                        # every figure from 400,000 studies a world (2 CPU-minutes)
    python tools/design_figures.py --check                # the same, compared with what the docs print
    python tools/design_figures.py --studies 40000 --seed 1000 --check   # quicker (tests/test_design_check.py)

A figure is a statistic of one scenario (an example config: config.yaml's study with its overrides, and a
spread) in one world (no variant differs, or every variant is effect_pct better), written in the docs
after its label as "value ± Monte Carlo error". The studies are simulated in chunks of CHUNK, chunk k with
random seed --seed + k, so the docs' figures are reproducible. --check reads each figure back from its
page and fails where the page's value differs from this simulation's by more than 4 combined standard
errors, or where the page's ± is not the Monte Carlo error of DOC_STUDIES studies: a figure typed by
hand, left from a single draw or from an older design fails it.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lrstudy.analysis import design_check as dc  # noqa: E402
from lrstudy.config import defaults, merge, stats_of  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DOC_STUDIES = 400_000  # studies a world behind the docs' figures: a rate's error at most 0.0008
CHUNK = 20_000  # studies simulated at once (about 50 MB for the adaptive example)
EXAMPLE = {"max_seeds": 12, "effect_pct": 0.2, "power": 0.8}  # docs/adaptive-design.md's design
NONE = {"stats": {"multiplicity": "none"}}


@dataclass(frozen=True)
class Scenario:
    """config.yaml's study with `overrides`, final accuracies spread as `spread`."""

    overrides: dict = field(hash=False)
    spread: dc.Spread
    effect_pct: float = 0.2

    def setup(self) -> dc.Setup:
        config = merge(defaults(), self.overrides)
        return dc.Setup.of(config, stats_of(config))


SCENARIOS = {
    "adaptive example": Scenario({"adaptive": EXAMPLE}, dc.Spread(0.15)),
    "adaptive example, none": Scenario({"adaptive": EXAMPLE, **NONE}, dc.Spread(0.15)),
    "adaptive example, sd 0.3": Scenario({"adaptive": EXAMPLE}, dc.Spread(0.3)),
    "adaptive example, +0.4": Scenario({"adaptive": EXAMPLE}, dc.Spread(0.15), effect_pct=0.4),
    "default fixed design": Scenario({}, dc.Spread(0.15)),
    "fixed, variants 3x as noisy": Scenario(NONE, dc.Spread(0.45, sd_reference=0.15)),
    "fixed, 6 seeds, variants 3x as noisy": Scenario({"seeds": list(range(6)), **NONE}, dc.Spread(0.45, 0.15)),
    "adaptive, variants 3x as noisy": Scenario({"adaptive": EXAMPLE, **NONE}, dc.Spread(0.45, sd_reference=0.15)),
}


def _saved(outcome: dc.Outcome) -> tuple[float, float]:
    """Runs saved against EXAMPLE's max_seeds for every arm (and the fixed design of the same power,
    which has as many seeds), in percent."""
    ceiling = (outcome.variant_seeds.shape[1] + 1) * EXAMPLE["max_seeds"]
    runs, mcse = dc.rate(outcome.runs)
    return 100 * (1 - runs / ceiling), 100 * mcse / ceiling


# statistic -> (outcome -> (value, Monte Carlo error))
STATISTICS: dict[str, Callable[[dc.Outcome], tuple[float, float]]] = {
    "fwer": lambda o: dc.rate(np.any(o.called != 0, axis=1)),
    "per_comparison_error": lambda o: dc.rate(o.called != 0),
    "power": lambda o: dc.rate(o.called == 1),
    "called_better_diff": lambda o: dc.mean_where(o.diff, o.called == 1),
    "runs": lambda o: dc.rate(o.runs),
    "variant_seeds": lambda o: dc.rate(o.variant_seeds),
    "reference_seeds": lambda o: dc.rate(o.reference_seeds),
    "saved_pct": _saved,
}


@dataclass(frozen=True)
class Figure:
    page: str
    label: str  # the text before "value ± error" on its page (whitespace as any run of spaces; {}: another figure)
    scenario: str
    world: str  # "null" or "effect"
    statistic: str
    digits: int

    def text(self, value: float, mcse: float) -> str:
        return f"{self.label} {value:.{self.digits}f} \u00b1 {mcse:.{self.digits}f}".replace("{}", "...")


ADAPTIVE, REPORT = "docs/adaptive-design.md", "docs/report-and-statistics.md"
FIGURES = [
    Figure(ADAPTIVE, "| family-wise error (any better/worse) |", "adaptive example", "null", "fwer", 4),
    Figure(ADAPTIVE, "| per-comparison error |", "adaptive example", "null", "per_comparison_error", 4),
    Figure(ADAPTIVE, "| power (called better) | |", "adaptive example", "effect", "power", 4),
    Figure(
        ADAPTIVE, "| difference reported when called better | |", "adaptive example", "effect", "called_better_diff", 4
    ),
    Figure(ADAPTIVE, "| runs, all arms (expected) |", "adaptive example", "null", "runs", 3),
    Figure(ADAPTIVE, "| runs, all arms (expected) | {} |", "adaptive example", "effect", "runs", 3),
    Figure(ADAPTIVE, "| seeds per variant |", "adaptive example", "null", "variant_seeds", 3),
    Figure(ADAPTIVE, "| seeds per variant | {} |", "adaptive example", "effect", "variant_seeds", 3),
    Figure(ADAPTIVE, "| seeds of the reference |", "adaptive example", "null", "reference_seeds", 3),
    Figure(ADAPTIVE, "| seeds of the reference | {} |", "adaptive example", "effect", "reference_seeds", 3),
    Figure(ADAPTIVE, "at a true +0.4 points", "adaptive example, +0.4", "effect", "called_better_diff", 4),
    Figure(ADAPTIVE, "fewer runs without a difference:", "adaptive example", "null", "saved_pct", 2),
    Figure(ADAPTIVE, "with one:", "adaptive example", "effect", "saved_pct", 2),
    Figure(ADAPTIVE, "the same design has family-wise error", "adaptive example, none", "null", "fwer", 4),
    Figure(ADAPTIVE, "per-comparison error", "adaptive example, none", "null", "per_comparison_error", 4),
    Figure(ADAPTIVE, "and power", "adaptive example, none", "effect", "power", 4),
    Figure(ADAPTIVE, "Holm) has family-wise error", "default fixed design", "null", "fwer", 4),
    Figure(ADAPTIVE, "and power at 0.2 points", "default fixed design", "effect", "power", 4),
    Figure(ADAPTIVE, "the adaptive example has power", "adaptive example, sd 0.3", "effect", "power", 4),
    Figure(
        REPORT, "a fixed design of three seeds each:", "fixed, variants 3x as noisy", "null", "per_comparison_error", 4
    ),
    Figure(REPORT, "; of six:", "fixed, 6 seeds, variants 3x as noisy", "null", "per_comparison_error", 4),
    Figure(REPORT, "keep it below alpha):", "adaptive, variants 3x as noisy", "null", "per_comparison_error", 4),
]


def simulate(scenario: Scenario, world: str, studies: int, seed: int) -> dict[str, tuple[float, float]]:
    """Every statistic of `studies` studies of the scenario in one world, pooled over chunks."""
    setup, truth = scenario.setup(), (0.0 if world == "null" else scenario.effect_pct)
    chunks = []
    for k, start in enumerate(range(0, studies, CHUNK)):
        chunks.append(dc.simulator(setup, scenario.spread, min(CHUNK, studies - start), seed + k)(truth))
    pooled = dc.Outcome(*(np.concatenate([getattr(c, f) for c in chunks]) for f in dc.Outcome.__dataclass_fields__))
    return {name: statistic(pooled) for name, statistic in STATISTICS.items()}


def figures(studies: int, seed: int) -> dict[Figure, tuple[float, float]]:
    """Each figure's (value, Monte Carlo error) from `studies` studies a world."""
    worlds = {(f.scenario, f.world) for f in FIGURES}
    results = {w: simulate(SCENARIOS[w[0]], w[1], studies, seed) for w in sorted(worlds)}
    return {f: results[(f.scenario, f.world)][f.statistic] for f in FIGURES}


NUMBER = r"(-?\d+\.\d+) \u00b1 (\d+\.\d+)"


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def documented(figure: Figure, repo: Path = REPO) -> tuple[float, float]:
    """(value, ±) the figure's page prints after its label; a ValueError unless exactly once."""
    page = _normal((repo / figure.page).read_text())
    label = re.escape(_normal(figure.label)).replace(r"\{\}", NUMBER.replace("(", "(?:"))
    found = re.findall(label + " " + NUMBER, page)
    if len(found) != 1:
        raise ValueError(f"{figure.page}: {len(found)} figures after {figure.label!r}, not 1")
    return float(found[0][0]), float(found[0][1])


def disagreements(simulated: dict[Figure, tuple[float, float]], studies: int, repo: Path = REPO) -> list[str]:
    """The figures whose page disagrees with this simulation of `studies` studies a world."""
    out = []
    for figure, (value, mcse) in simulated.items():
        page_value, page_mcse = documented(figure, repo)
        unit = 10.0**-figure.digits
        expected_mcse = mcse * math.sqrt(studies / DOC_STUDIES)  # the page's, from DOC_STUDIES studies
        if abs(page_value - value) > 4 * math.hypot(page_mcse, mcse) + unit:
            out.append(f"{figure.text(page_value, page_mcse)}: simulated {figure.text(value, mcse)}")
        elif abs(page_mcse - expected_mcse) > max(0.5 * expected_mcse, unit):
            out.append(
                f"{figure.text(page_value, page_mcse)}: the error of {DOC_STUDIES:,} studies is {expected_mcse:.2g}"
            )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=DOC_STUDIES, help="studies a world")
    parser.add_argument("--seed", type=int, default=0, help="the first chunk's random seed")
    parser.add_argument("--check", action="store_true", help="compare with the docs; exit 1 where one is off")
    args = parser.parse_args(argv)
    simulated = figures(args.studies, args.seed)
    for figure, (value, mcse) in simulated.items():
        print(f"{figure.page} [{figure.scenario}, {figure.world}]: {figure.text(value, mcse)}")
    if args.check and (problems := disagreements(simulated, args.studies)):
        sys.exit("the docs disagree with the simulation:\n" + "\n".join(problems))


if __name__ == "__main__":
    main()
