"""lrstudy-design: the study's decision path, simulated before any GPU hour is spent.

    lrstudy-design --configfile study.yaml --sd 0.15 [--studies N] [--json]
    python -m lrstudy.analysis.design_check ...      (the same, without the console script)

The config is read as the workflow reads it (config.yaml's defaults, the file's keys over them, the same
schema). Final accuracies are drawn for every variant and seed (normal, spread --sd points between seeds)
and decided by the workflow's own code: the adaptive design's Walk (lrstudy.analysis.adaptive), or in a
fixed design Welch's test with the configured multiplicity (lrstudy.analysis.stats). Two worlds:

- null: no variant differs from the reference. fwer is the share of studies with any better/worse
  (the family-wise error), per_comparison_error the share of comparisons;
- effect: every variant is effect_pct better. power is the share of comparisons called better.

Runs count every arm, the reference's included. The fixed design with the same power is the smallest
number of seeds per variant (all at once, same multiplicity) whose simulated power reaches the design's.
Every rate comes with its Monte Carlo standard error; the default --studies keeps it below 0.003.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import jsonschema
import numpy as np
import yaml
from scipy import stats

from lrstudy.analysis import adaptive as ad
from lrstudy.analysis import stats as st
from lrstudy.config import DEFAULTS_FILE, ConfigError, Stats, load_yaml, prepare_config, stats_of
from lrstudy.studies import assemble

SCHEMA = DEFAULTS_FILE.parent / "workflow" / "schemas" / "config.schema.yaml"
CIFAR10_TEST_IMAGES = 10_000
# A rate's Monte Carlo standard error is at most sqrt(0.25 / studies): 0.0030 at 28,000 studies.
DEFAULT_STUDIES = 28_000
MAX_FIXED_SEEDS = 1000


def load_config(configfile: str | Path | None) -> dict:
    """The study's complete config, as the workflow builds and checks it."""
    config, _ = assemble(DEFAULTS_FILE.parent, load_yaml(configfile) if configfile else {}, check_files=False)
    prepare_config(config)
    try:
        jsonschema.validate(config, yaml.safe_load(SCHEMA.read_text()))
    except jsonschema.ValidationError as error:
        where = ".".join(map(str, error.absolute_path)) or "the config"
        raise ConfigError(f"{configfile or 'config.yaml'}: {where}: {error.message}") from None
    return config


@dataclass(frozen=True)
class Spread:
    """How final accuracies scatter between seeds: sd points for the variants, sd_reference for the
    reference; t-distributed with df degrees of freedom (scaled to that sd) or, with df None, normal."""

    sd: float
    sd_reference: float | None = None
    df: float | None = None

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...], reference: bool = False) -> np.ndarray:
        sd = self.sd_reference if reference and self.sd_reference is not None else self.sd
        if self.df is None:
            return rng.normal(0.0, sd, shape)
        return rng.standard_t(self.df, shape) * sd / math.sqrt(self.df / (self.df - 2))


def rate(hits: np.ndarray) -> tuple[float, float]:
    """(mean, Monte Carlo standard error) of per-study values (one row per study)."""
    per_study = hits.reshape(len(hits), -1).mean(1)
    return float(per_study.mean()), float(per_study.std(ddof=1) / math.sqrt(len(per_study)))


def fixed_decisions(variant, reference, resolution: float, settings: Stats) -> np.ndarray:
    """+1 better, -1 worse, 0 neither, per study and comparison, as stats.fixed_design decides."""
    diff, se, df, _ = st.welch_parts(variant, reference[:, None, :], resolution)
    p = 2 * stats.t.sf(np.abs(diff) / se, df)
    adjusted, _ = st.holm(p, settings.alpha, settings.multiplicity)
    return np.where(adjusted < settings.alpha, np.sign(diff), 0)


@dataclass(frozen=True)
class Setup:
    """A study as the simulation sees it: its variants, its seeds (an adaptive design's first stage), the
    test images an accuracy is counted on, and how its verdicts are tested."""

    variants: int
    seeds: int
    test_images: int
    settings: Stats

    @classmethod
    def of(cls, config: Mapping, settings: Stats) -> Setup:
        """The setup of a complete config (`settings`: its stats_of)."""
        test_images = config["dataset"]["test_limit"] or CIFAR10_TEST_IMAGES
        return cls(len(config["variants"]), len(config["seeds"]), test_images, settings)

    @property
    def comparisons(self) -> int:
        return self.variants - 1

    def fixed(self, seeds: int) -> Setup:
        """The same study as a fixed design of `seeds` seeds per variant."""
        return replace(self, seeds=seeds, settings=replace(self.settings, adaptive=None))


@dataclass
class Outcome:
    called: np.ndarray  # (studies, m): +1 better, -1 worse, 0 neither
    runs: np.ndarray  # (studies,): every run of the study
    variant_seeds: np.ndarray  # (studies, m)
    reference_seeds: np.ndarray  # (studies,)


def simulator(setup: Setup, spread: Spread, studies: int, seed: int) -> Callable[[float], Outcome]:
    """diff -> the outcome of `studies` simulated studies of this setup in which every variant is diff
    points better than the reference."""
    m = setup.comparisons
    resolution = st.resolution_pct(setup.test_images)
    design = ad.design_of(setup.settings)
    n = setup.seeds if design is None else design.max_seeds

    def run(diff: float) -> Outcome:
        rng = np.random.default_rng(seed)
        variant = diff + spread.draw(rng, (studies, m, n))
        reference = spread.draw(rng, (studies, n), reference=True)
        if design is None:
            called = fixed_decisions(variant, reference, resolution, setup.settings)
            seeds = np.full((studies, m), n)
            return Outcome(called, np.full(studies, (m + 1) * n), seeds, np.full(studies, n))
        walk = ad.walk(design, variant, reference, resolution)
        called = np.select([walk.decision == ad.BETTER, walk.decision == ad.WORSE], [1, -1], 0)
        seeds = walk.seeds()
        return Outcome(called, walk.runs(), seeds, seeds.max(1, initial=design.ends[0]))

    return run


def fixed_seeds_for(power: float, setup: Setup, spread: Spread, effect: float, studies: int, seed: int) -> int:
    """The fewest seeds per variant of a fixed design (same variants and multiplicity) whose simulated
    power at effect reaches `power`; MAX_FIXED_SEEDS + 1 when it takes more. The same random numbers for
    every candidate keep the power rising with the seeds."""

    def reached(n: int) -> bool:
        fixed = simulator(setup.fixed(n), spread, studies, seed)(effect)
        return rate(fixed.called == 1)[0] >= power

    low, high = 1, 2  # low never reaches it (one seed has no test), high is the next candidate
    while not reached(high):
        if high >= MAX_FIXED_SEEDS:
            return MAX_FIXED_SEEDS + 1
        low, high = high, min(2 * high, MAX_FIXED_SEEDS)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if reached(mid) else (mid, high)
    return high


def check(
    setup: Setup,
    spread: Spread,
    studies: int = DEFAULT_STUDIES,
    seed: int = 0,
    effect_pct: float | None = None,
) -> dict:
    """The design's operating characteristics: the keys lrstudy-design --json prints."""
    design = ad.design_of(setup.settings)
    effect = effect_pct if effect_pct is not None else (design.effect_pct if design else None)
    if effect is None:
        raise ConfigError("a fixed design has no adaptive.effect_pct: give the difference to power for, --effect-pct")
    m = setup.comparisons
    if m < 1:
        raise ConfigError("variants: one variant has nothing to be compared with; configure at least two")
    simulate = simulator(setup, spread, studies, seed)
    null, alt = simulate(0.0), simulate(effect)
    fwer, fwer_mcse = rate(np.any(null.called != 0, axis=1))
    per_comparison, per_comparison_mcse = rate(null.called != 0)
    power, power_mcse = rate(alt.called == 1)
    fixed_seeds = fixed_seeds_for(power, setup, spread, effect, studies, seed)
    max_seeds = design.max_seeds if design else setup.seeds
    ceiling, fixed_runs = (m + 1) * max_seeds, (m + 1) * fixed_seeds
    expected = {"null": float(null.runs.mean()), "effect": float(alt.runs.mean())}
    return {
        "design": "adaptive" if design else "fixed",
        "variants": m + 1,
        "comparisons": m,
        "alpha": setup.settings.alpha,
        "multiplicity": setup.settings.multiplicity,
        "sd": spread.sd,
        "effect_pct": effect,
        "seeds": setup.seeds,
        "max_seeds": max_seeds,
        "studies": studies,
        "fwer": fwer,
        "fwer_mcse": fwer_mcse,
        "per_comparison_error": per_comparison,
        "per_comparison_error_mcse": per_comparison_mcse,
        "power": power,
        "power_mcse": power_mcse,
        "expected_runs": expected,
        "seeds_per_variant": {"null": float(null.variant_seeds.mean()), "effect": float(alt.variant_seeds.mean())},
        "reference_seeds": {"null": float(null.reference_seeds.mean()), "effect": float(alt.reference_seeds.mean())},
        "runs_all_max_seeds": ceiling,
        "fixed_design_seeds_same_power": fixed_seeds,
        "fixed_design_runs_same_power": fixed_runs,
        "runs_saved_vs_max_seeds": {k: 1 - v / ceiling for k, v in expected.items()},
        "runs_saved_vs_fixed_same_power": {k: 1 - v / fixed_runs for k, v in expected.items()},
    }


def table(result: Mapping) -> str:
    """The result as the lines a person reads."""
    r = result
    mult = "Holm" if r["multiplicity"] == "holm" else "none (per comparison)"
    lines = [
        f"{r['design']} design: {r['variants']} variants ({r['comparisons']} compared with the reference), "
        + (
            f"{r['seeds']} seeds a stage, max_seeds {r['max_seeds']}"
            if r["design"] == "adaptive"
            else f"{r['seeds']} seeds each"
        )
        + f"; sd {r['sd']:g} points; {r['studies']:,} simulated studies",
        f"alpha {r['alpha']:g}, multiplicity {mult}",
        "",
        f"{'':44}{'no difference':>16}{'every variant +' + format(r['effect_pct'], 'g'):>22}",
        f"{'family-wise error (any better/worse)':44}{_rate(r['fwer'], r['fwer_mcse']):>16}",
        f"{'per-comparison error':44}{_rate(r['per_comparison_error'], r['per_comparison_error_mcse']):>16}",
        f"{'power (called better)':44}{'':>16}{_rate(r['power'], r['power_mcse']):>22}",
        f"{'runs, all arms (expected)':44}{r['expected_runs']['null']:>16.1f}{r['expected_runs']['effect']:>22.1f}",
        f"{'seeds per variant':44}{r['seeds_per_variant']['null']:>16.2f}{r['seeds_per_variant']['effect']:>22.2f}",
        f"{'seeds of the reference':44}{r['reference_seeds']['null']:>16.2f}{r['reference_seeds']['effect']:>22.2f}",
        "",
        f"max_seeds for every arm: {r['runs_all_max_seeds']} runs; saved "
        f"{100 * r['runs_saved_vs_max_seeds']['null']:.0f}% (no difference), "
        f"{100 * r['runs_saved_vs_max_seeds']['effect']:.0f}% (effect)",
        f"fixed design with the same power: {r['fixed_design_seeds_same_power']} seeds per variant, "
        f"{r['fixed_design_runs_same_power']} runs; saved {100 * r['runs_saved_vs_fixed_same_power']['null']:.0f}% "
        f"(no difference), {100 * r['runs_saved_vs_fixed_same_power']['effect']:.0f}% (effect)",
    ]
    return "\n".join(lines)


def _rate(value: float, mcse: float) -> str:
    return f"{value:.3f} \u00b1 {mcse:.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lrstudy-design", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", help="the study's config file, as given to snakemake (default: config.yaml)")
    parser.add_argument(
        "--sd", type=float, required=True, help="assumed spread of final accuracy between seeds, points"
    )
    parser.add_argument("--sd-reference", type=float, help="the reference's spread, if it differs (default: --sd)")
    parser.add_argument(
        "--studies", type=int, default=DEFAULT_STUDIES, help=f"simulated studies (default {DEFAULT_STUDIES:,})"
    )
    parser.add_argument("--effect-pct", type=float, help="the difference to power for (default: adaptive.effect_pct)")
    parser.add_argument("--seed", type=int, default=0, help="the simulation's random seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    if not args.sd > 0 or args.studies < 2:
        parser.error("--sd must be > 0 and --studies at least 2")
    try:
        config = load_config(args.configfile)
        setup = Setup.of(config, stats_of(config))
        result = check(setup, Spread(args.sd, args.sd_reference), args.studies, args.seed, args.effect_pct)
    except ConfigError as error:
        sys.exit(f"lrstudy-design: {error}")
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
