"""The benchmark's cases and how each rule is run on them.

Families (all with shared seasonality and AR(1) noise in both arms):

- ``acc``: accuracy 0.90, about 100 labelled candidate predictions per 30 s interval (10% canary), labels
  up to 5 intervals late; a regression of 0.02 matters; 80 intervals (40 min).
- ``err``: error rate 0.1% of about 200 candidate requests per interval; 0.002 matters; 80 intervals.
- ``lat``: latency as Prometheus keeps it, bucket counts per 10 s at unequal request rates (2/18, 10/90,
  50/50 rps), looks every 30 s; a 5% slowdown matters; 40 intervals (20 min).
- ``iid``: latency as independent per-request samples, 25 per arm per interval: where the per-sample
  Mann-Whitney judge is valid (``modelratchet check`` with raw samples); the sample counts it reaches.
- ``static``: accuracy against a static (or recorded) baseline value, estimated on a finite sample: taken
  as exact, as the operator did, or with its evidence (its counts, frozen), as it does now.
- ``eff``: Wald's textbook case, accuracy 0.90 -> 0.88 at alpha = beta = 5%, known baseline and 50/50.

Peers are configured twice: as their documentation configures them (the headline), and tuned for speed
(30 s checks with the tightest failure limits); the ``-cal`` rows calibrate the speed statistic to 1%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from modelratchet.judges import Direction

from . import latency, rules, wald
from .latency import HistogramConfig, HistogramStream, histogram_stream
from .rules import Outcome
from .streams import FloatArray, LatencyConfig, RateConfig, RateStream, SampleStream, latency_stream, rate_stream

ALPHA, BETA = 0.01, 0.05

ACC = RateConfig(rate=0.90, per_interval=1000, canary_share=0.1, delays=(0.2, 0.3, 0.2, 0.15, 0.1, 0.05))
ERR = RateConfig(rate=0.001, per_interval=2000, canary_share=0.1)
IID = LatencyConfig(median=0.1, sigma=0.5, per_interval=25)
LAT = HistogramConfig()
SPLITS = ((2.0, 18.0), (10.0, 90.0), (50.0, 50.0))
# Static baselines: a stationary accuracy (the only error is the baseline's own estimate).
STATIC = RateConfig(rate=0.90, per_interval=1000, canary_share=0.1, modulate_level=False)

# Rule names. The documented settings are the headline; see docs/judges.md for where each comes from.
ARGO_DOCS = "argo (docs: 5m, failureLimit 3)"
FLAGGER_DOCS = "flagger (docs: 1m, threshold 5)"
KAYENTA_DOCS = "kayenta (docs: growing, 4 intervals)"
ARGO_FAST = "argo (speed: 30s, failureLimit 0)"
FLAGGER_FAST = "flagger (speed: 30s, threshold 5)"
KAYENTA_FAST = "kayenta (speed: 30s @0.98)"
BEFORE = "before: mannWhitney on p50 range"
REFERENCE = "mannWhitney on raw samples"
MODELRATCHET = "modelratchet"
EXACT = "static taken as exact (before)"
EVIDENCE = "modelratchet (with evidence)"
TRUTH = "known true rate (ideal)"
DOCS = (ARGO_DOCS, FLAGGER_DOCS, KAYENTA_DOCS)
CALIBRATED = ("argo-cal", "flagger-cal", "kayenta-cal")


@dataclass(frozen=True)
class Family:
    name: str
    intervals: int
    direction: Direction
    tolerance: float  # min_regression (rates, absolute) or min_effect (latency, relative)
    typical: float  # the fixed rules' threshold on the bad-oriented value, as usually configured
    typical_text: str
    steps: int = rules.STEPS  # series points per interval (Kayenta's step)


_P99 = LAT.median * math.exp(2.3263 * LAT.sigma) * 1.05
# What a dashboard shows for the nominal p99 from these buckets (histogram_quantile interpolates linearly inside
# a bucket 2.5 times wide): the threshold a user would set from it.
_P99_BUCKETS = (
    float(latency.histogram_quantile(0.99, latency._bucket_probs(np.array(math.log(LAT.median)), LAT.sigma))) * 1.05
)
FAMILIES = {
    "acc": Family("accuracy", 80, "higherIsBetter", 0.02, -(ACC.rate - 0.02), "accuracy < 0.88"),
    "err": Family("errors", 80, "lowerIsBetter", 0.002, ERR.rate + 0.002, "error rate > 0.003"),
    "lat": Family(
        "latency",
        40,
        "lowerIsBetter",
        0.05,
        _P99_BUCKETS,
        "histogram_quantile p99 > 1.05 x its nominal value",
        steps=latency.SUB,
    ),
    "iid": Family("latency (raw samples)", 40, "lowerIsBetter", 0.05, _P99, "interval p99 > 1.05 x nominal p99"),
    "static": Family("accuracy vs a static baseline", 80, "higherIsBetter", 0.02, 0.0, ""),
}


@dataclass(frozen=True)
class Case:
    family: str  # acc | err | lat | iid | static | eff
    title: str
    kind: str  # aa | regression | improvement
    runs: int
    rate: RateConfig | None = None
    iid: LatencyConfig | None = None
    histogram: HistogramConfig | None = None
    wald: float | None = None  # Wald's expected sample number (candidate samples) for this case
    known_rate: float | None = None  # efficiency block: known baseline
    intervals: int = 0  # efficiency block: its own horizon
    baseline_samples: int = 0  # static: the sample the baseline value was estimated on
    baseline_rate: float = 0.0  # static: the rate it was estimated at (before any drift)

    @property
    def group(self) -> str:
        if self.histogram is not None:
            return f"{self.family}:{self.histogram.split}"
        return self.family


def _rate_wald(cfg: RateConfig, effect: float, tolerance: float, ratio: float, higher: bool) -> float | None:
    bad_b = 1.0 - cfg.rate if higher else cfg.rate
    worse = -effect if higher else effect  # increase of the bad-event rate
    if worse > 0.0 and not cfg.drift:
        return wald.asn_h1(wald.kl_two_sample_rate(bad_b + worse, bad_b, worse, ratio), ALPHA, BETA)
    if worse == 0.0:
        return wald.asn_h0(wald.kl_two_sample_rate(bad_b, bad_b, tolerance, ratio), ALPHA, BETA)
    return None


def build_cases(scale: float, floor: int = 30) -> list[Case]:
    def n(runs: int, least: int = floor) -> int:
        return max(least, round(runs * scale))

    aa_runs = n(4000, max(floor, 200 if floor >= 30 else floor))
    cases: list[Case] = []
    acc = FAMILIES["acc"]
    for title, kind, cfg, runs in [
        ("A/A, no change", "aa", ACC, aa_runs),
        ("step -0.02 (the regression that matters)", "regression", replace(ACC, effect=-0.02), n(500)),
        ("step -0.04", "regression", replace(ACC, effect=-0.04), n(500)),
        ("slow drift to -0.04 at 40 min", "regression", replace(ACC, effect=-0.04, drift=True), n(500)),
        ("improvement +0.02", "improvement", replace(ACC, effect=0.02), n(500)),
        ("A/A, 20% of intervals NaN", "aa", replace(ACC, nan_share=0.2), aa_runs),
        ("step -0.03, 20% of intervals NaN", "regression", replace(ACC, effect=-0.03, nan_share=0.2), n(500)),
    ]:
        w = _rate_wald(cfg, cfg.effect, acc.tolerance, 9.0, True) if kind != "improvement" else None
        cases.append(Case("acc", f"accuracy: {title}", kind, runs, rate=cfg, wald=w))

    lat = FAMILIES["lat"]
    shift10 = wald.asn_h1(wald.kl_lognormal_shift(0.10, LAT.sigma), ALPHA, BETA)
    spread = wald.asn_h1(wald.kl_lognormal_spread(1.5), ALPHA, BETA)
    for cand_rps, base_rps in SPLITS:
        cfg = replace(LAT, cand_rps=cand_rps, base_rps=base_rps)
        aa_wald = wald.asn_h0(wald.kl_lognormal_shift(lat.tolerance, LAT.sigma), ALPHA, BETA)
        cases.append(
            Case("lat", f"latency {cfg.split}: A/A, no change", "aa", n(1500, floor), histogram=cfg, wald=aa_wald)
        )
    low, mid = replace(LAT, raw=True), replace(LAT, cand_rps=10.0, base_rps=90.0)
    for title, cfg, runs, w in [
        ("step +10% median", replace(low, shift=0.10), n(300), shift10),
        ("variance only: log-sd x1.5, same median", replace(low, spread=1.5), n(300), spread),
        ("step +25% median", replace(LAT, shift=0.25), n(500), None),
        ("slow drift to +30% at 20 min", replace(LAT, shift=0.30, drift=True), n(500), None),
        ("step +10% median", replace(mid, shift=0.10), n(500), shift10),
        ("variance only: log-sd x1.5, same median", replace(mid, spread=1.5), n(500), spread),
    ]:
        cases.append(Case("lat", f"latency {cfg.split}: {title}", "regression", runs, histogram=cfg, wald=w))

    for title, kind, icfg, runs, w in [
        (
            "A/A, no change",
            "aa",
            IID,
            n(2000, floor),
            wald.asn_h0(wald.kl_lognormal_shift(0.05, IID.sigma), ALPHA, BETA),
        ),
        ("step +10% median", "regression", replace(IID, shift=0.10), n(500), shift10),
        ("variance only: log-sd x1.5, same median", "regression", replace(IID, spread=1.5), n(500), spread),
    ]:
        cases.append(Case("iid", f"latency, raw samples 25/25 per 30 s: {title}", kind, runs, iid=icfg, wald=w))

    err = FAMILIES["err"]
    for title, kind, cfg, runs in [
        ("A/A, no change", "aa", ERR, aa_runs),
        ("sparse errors 0.001 -> 0.005", "regression", replace(ERR, effect=0.004), n(500)),
    ]:
        w = _rate_wald(cfg, cfg.effect, err.tolerance, 9.0, False)
        cases.append(Case("err", f"errors: {title}", kind, runs, rate=cfg, wald=w))

    # Static baselines: the value was estimated on `baseline_samples` at `baseline_rate`; the candidate's truth is
    # `rate`. The post-promotion watch judges the promoted checkpoint (all the traffic) against what the stable
    # arm recorded during the canary.
    watch = replace(STATIC, canary_share=1.0)
    for title, kind, cfg, samples, at in [
        ("A/A, baseline estimated on 2,000 samples", "aa", STATIC, 2_000, 0.90),
        ("A/A, baseline estimated on 10,000 samples", "aa", STATIC, 10_000, 0.90),
        (
            "A/A, level drifted -0.005 in both arms since (10,000 samples)",
            "aa",
            replace(STATIC, rate=0.895),
            10_000,
            0.90,
        ),
        ("post-promotion watch, A/A against the canary's stable arm (9,000)", "aa", watch, 9_000, 0.90),
        ("step -0.02, baseline estimated on 10,000 samples", "regression", replace(STATIC, effect=-0.02), 10_000, 0.90),
    ]:
        cases.append(
            Case(
                "static", f"static: {title}", kind, n(2000, floor), rate=cfg, baseline_samples=samples, baseline_rate=at
            )
        )

    # Efficiency block: alpha = beta = 0.05, stationary accuracy, Wald's yardstick.
    known = RateConfig(rate=0.90, per_interval=50, canary_share=1.0, modulate_level=False)
    side = RateConfig(rate=0.90, per_interval=200, canary_share=0.5, modulate_level=False)
    e = 0.05
    cases += [
        Case(
            "eff",
            "efficiency, known p0: 0.90 -> 0.88",
            "regression",
            n(1000, 60 if floor >= 30 else floor),
            rate=replace(known, effect=-0.02),
            wald=wald.asn_h1(wald.kl_bernoulli(0.12, 0.10), e, e),
            known_rate=0.90,
            intervals=400,
        ),
        Case(
            "eff",
            "efficiency, known p0: no change",
            "aa",
            n(1000, 60 if floor >= 30 else floor),
            rate=known,
            wald=wald.asn_h0(wald.kl_bernoulli(0.10, 0.12), e, e),
            known_rate=0.90,
            intervals=400,
        ),
        Case(
            "eff",
            "efficiency, side by side 50/50: 0.90 -> 0.88",
            "regression",
            n(1000, 60 if floor >= 30 else floor),
            rate=replace(side, effect=-0.02),
            wald=wald.asn_h1(wald.kl_two_sample_rate(0.12, 0.10, 0.02, 1.0), e, e),
            intervals=300,
        ),
        Case(
            "eff",
            "efficiency, side by side 50/50: no change",
            "aa",
            n(1000, 60 if floor >= 30 else floor),
            rate=side,
            wald=wald.asn_h0(wald.kl_two_sample_rate(0.10, 0.10, 0.02, 1.0), e, e),
            intervals=300,
        ),
    ]
    return cases


# --- what the peers see -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Views:
    """Per run: the peers' measurements and the candidate samples seen by each interval."""

    speed: FloatArray  # bad-oriented value per 30 s interval
    speed_z: FloatArray | None  # Kayenta z per 30 s interval (None where it cannot be computed)
    docs_argo: FloatArray  # bad-oriented value over 5 min, every 5 min
    docs_flagger: FloatArray  # over 1 min, every minute
    docs_kayenta: FloatArray  # z over all points since the start, at 4 checks
    cum: FloatArray


def _checks(horizon: int, every: int) -> np.ndarray:
    return np.arange(every - 1, horizon, every)


def kayenta_checks(horizon: int) -> np.ndarray:
    return _checks(horizon, horizon // 4)


def _rate_views(stream: RateStream, fam: Family) -> Views:
    higher = fam.direction == "higherIsBetter"
    sign = -1.0 if higher else 1.0
    succ, total = stream.per_interval(stream.cand_succ), stream.per_interval(stream.cand_total)
    nan = stream.nan_interval
    with np.errstate(invalid="ignore", divide="ignore"):
        value = succ / total
    speed = sign * np.where(nan | (total == 0), np.nan, value)

    def over(window: int, every: int) -> FloatArray:
        checks = _checks(stream.intervals, every)
        v = sign * rules.window_value(succ, total, window, checks)
        return np.where(nan[:, checks], np.nan, v)  # a failed query fails the measurement's query too

    cand, base = rules.step_ratios(stream, nan_masked=True)
    runs = cand.shape[0]
    docs_z = rules.growing_z(
        cand.reshape(runs, -1), base.reshape(runs, -1), kayenta_checks(stream.intervals), rules.STEPS, sign
    )
    return Views(
        speed=speed,
        speed_z=rules.mw_z(cand, base, sign),
        docs_argo=over(10, 10),
        docs_flagger=over(2, 2),
        docs_kayenta=docs_z,
        cum=stream.cumulative(stream.cand_total),
    )


def _latency_views(stream: HistogramStream) -> Views:
    p99 = latency.window_quantile(stream.cand, 0.99, 1, stream.intervals)

    def over(window: int, every: int) -> FloatArray:
        checks = _checks(stream.intervals, every)
        out: FloatArray = latency.window_quantile(stream.cand, 0.99, window, stream.intervals)[:, checks]
        return out

    cand_p50, base_p50 = latency.rolling_quantile(stream.cand), latency.rolling_quantile(stream.base)
    docs_z = rules.growing_z(cand_p50, base_p50, kayenta_checks(stream.intervals), latency.SUB, 1.0)
    return Views(
        speed=p99,
        speed_z=None,
        docs_argo=over(10, 10),
        docs_flagger=over(2, 2),
        docs_kayenta=docs_z,
        cum=stream.cumulative_samples(),
    )


def _iid_views(stream: SampleStream) -> Views:
    p99 = np.quantile(stream.cand, 0.99, axis=2)
    runs, intervals, m = stream.cand.shape

    def over(window: int, every: int) -> FloatArray:
        checks = _checks(intervals, every)
        out = np.empty((runs, checks.size))
        for i, k in enumerate(checks):
            out[:, i] = np.quantile(stream.cand[:, max(0, k - window + 1) : k + 1].reshape(runs, -1), 0.99, axis=1)
        return out

    docs_z = rules.growing_z(
        stream.cand.reshape(runs, -1), stream.base.reshape(runs, -1), kayenta_checks(intervals), m, 1.0
    )
    return Views(
        speed=p99,
        speed_z=rules.mw_z(stream.cand, stream.base, 1.0),
        docs_argo=over(10, 10),
        docs_flagger=over(2, 2),
        docs_kayenta=docs_z,
        cum=np.tile(np.arange(1, intervals + 1, dtype=float) * m, (runs, 1)),
    )


Stream = RateStream | SampleStream | HistogramStream


def _stream(case: Case, runs: int, intervals: int, rng: np.random.Generator) -> Stream:
    if case.histogram is not None:
        return histogram_stream(case.histogram, runs, intervals, rng)
    if case.iid is not None:
        return latency_stream(case.iid, runs, intervals, rng)
    assert case.rate is not None
    return rate_stream(case.rate, runs, intervals, rng)


def _views(stream: Stream, fam: Family) -> Views:
    if isinstance(stream, HistogramStream):
        return _latency_views(stream)
    if isinstance(stream, SampleStream):
        return _iid_views(stream)
    return _rate_views(stream, fam)


@dataclass(frozen=True)
class Calibration:
    argo: float
    flagger: float
    kayenta: float  # on the speed z; on the documented (growing) z where there is no speed z


def calibrate(case: Case, runs: int, rng: np.random.Generator) -> Calibration:
    """Thresholds giving ALPHA false rollbacks on separate A/A streams like ``case`` (its family and split)."""
    fam = FAMILIES[case.family]
    aa = replace(case, rate=replace(case.rate, effect=0.0, drift=False, nan_share=0.0) if case.rate else None)
    if case.histogram is not None:
        aa = replace(aa, histogram=replace(case.histogram, shift=0.0, spread=1.0, drift=False, raw=False))
    if case.iid is not None:
        aa = replace(aa, iid=replace(case.iid, shift=0.0, spread=1.0, drift=False))
    v = _views(_stream(aa, runs, fam.intervals, rng), fam)
    z = v.speed_z if v.speed_z is not None else v.docs_kayenta
    return Calibration(
        argo=rules.calibrate_argo(v.speed, ALPHA),
        flagger=rules.calibrate_flagger(v.speed, ALPHA),
        kayenta=rules.calibrate_argo(z, ALPHA),
    )


def calibration_key(case: Case) -> str:
    return case.group


def run_case(case: Case, cal: Calibration | None, rng: np.random.Generator, jobs: int) -> dict[str, Outcome]:
    if case.family == "eff":
        assert case.rate is not None
        eff_stream = rate_stream(case.rate, case.runs, case.intervals, rng)
        out = rules.modelratchet_rate(
            eff_stream,
            direction="higherIsBetter",
            min_regression=0.02,
            alpha=0.05,
            beta=0.05,
            known_rate=case.known_rate,
            jobs=jobs,
        )
        return {MODELRATCHET: out}
    fam = FAMILIES[case.family]
    if case.family == "static":
        return _run_static(case, fam, rng, jobs)
    stream = _stream(case, case.runs, fam.intervals, rng)
    v = _views(stream, fam)
    assert cal is not None
    horizon = fam.intervals
    results: dict[str, Outcome] = {
        ARGO_DOCS: rules.argo(v.docs_argo, fam.typical, v.cum, failure_limit=3, checks=_checks(horizon, 10)),
        FLAGGER_DOCS: rules.flagger(v.docs_flagger, fam.typical, v.cum, limit=5, checks=_checks(horizon, 2)),
        KAYENTA_DOCS: rules.kayenta(v.docs_kayenta, rules.KAYENTA_Z, v.cum, checks=kayenta_checks(horizon)),
        ARGO_FAST: rules.argo(v.speed, fam.typical, v.cum),
        FLAGGER_FAST: rules.flagger(v.speed, fam.typical, v.cum),
    }
    if v.speed_z is not None:
        results[KAYENTA_FAST] = rules.kayenta(v.speed_z, rules.KAYENTA_Z, v.cum)
    results["argo-cal"] = rules.argo(v.speed, cal.argo, v.cum)
    results["flagger-cal"] = rules.flagger(v.speed, cal.flagger, v.cum)
    if v.speed_z is not None:
        results["kayenta-cal"] = rules.kayenta(v.speed_z, cal.kayenta, v.cum)
    else:
        results["kayenta-cal"] = rules.kayenta(v.docs_kayenta, cal.kayenta, v.cum, checks=kayenta_checks(horizon))
    if isinstance(stream, HistogramStream):
        c, c_at, b, b_at = latency.rolling_series(stream)
        results[BEFORE] = rules.series_mann_whitney(
            c,
            c_at,
            b,
            b_at,
            v.cum,
            intervals=horizon,
            direction=fam.direction,
            min_effect=fam.tolerance,
            alpha=ALPHA,
            jobs=jobs,
        )
        if stream.cand_raw is not None and stream.base_raw is not None:
            results[REFERENCE] = rules.series_mann_whitney(
                [x for x, _ in stream.cand_raw],
                [i for _, i in stream.cand_raw],
                [x for x, _ in stream.base_raw],
                [i for _, i in stream.base_raw],
                v.cum,
                intervals=horizon,
                direction=fam.direction,
                min_effect=fam.tolerance,
                alpha=ALPHA,
                jobs=jobs,
            )
        results[MODELRATCHET] = rules.modelratchet_histogram(
            stream, direction=fam.direction, min_effect=fam.tolerance, alpha=ALPHA, jobs=jobs
        )
    elif isinstance(stream, SampleStream):
        results[MODELRATCHET] = rules.modelratchet_latency(
            stream, direction=fam.direction, min_effect=fam.tolerance, alpha=ALPHA, jobs=jobs
        )
    else:
        results[MODELRATCHET] = rules.modelratchet_rate(
            stream, direction=fam.direction, min_regression=fam.tolerance, alpha=ALPHA, beta=BETA, jobs=jobs
        )
    return results


def _run_static(case: Case, fam: Family, rng: np.random.Generator, jobs: int) -> dict[str, Outcome]:
    """The candidate's counts against a value estimated on ``baseline_samples``: as exact, or with its counts."""
    assert case.rate is not None
    stream = rate_stream(case.rate, case.runs, fam.intervals, rng)
    succ, total = stream.per_interval(stream.cand_succ), stream.per_interval(stream.cand_total)
    base_total = np.full(case.runs, float(case.baseline_samples))
    base_succ = rng.binomial(case.baseline_samples, case.baseline_rate, case.runs).astype(float)
    common = {"direction": fam.direction, "min_regression": fam.tolerance, "alpha": ALPHA, "beta": BETA, "jobs": jobs}
    truth = np.full(case.runs, case.baseline_rate)
    return {
        EXACT: rules.frozen_rate(succ, total, base_succ=base_succ, base_total=base_total, exact=True, **common),
        EVIDENCE: rules.frozen_rate(succ, total, base_succ=base_succ, base_total=base_total, exact=False, **common),
        TRUTH: rules.frozen_rate(succ, total, base_succ=truth, base_total=np.ones(case.runs), exact=True, **common),
    }
