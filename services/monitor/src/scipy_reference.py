"""What scipy.stats says on the same samples the monitor's statistics see (tests only).

Reads a JSON list of cases on stdin and writes a JSON list of answers, one per case.
"""
import json
import sys

import numpy as np
from scipy import stats
from scipy.spatial import distance


def answer(case):
    kind = case["kind"]
    if kind == "ks_samples":
        r = stats.ks_2samp(case["a"], case["b"], method=case.get("method", "auto"))
        return {"statistic": float(r.statistic), "pValue": float(r.pvalue)}
    if kind == "ks_bins":
        # Samples that take each bin's index as their value, ties and all.
        idx = np.arange(len(case["reference"]))
        a = np.repeat(idx, case["reference"])
        b = np.repeat(idx, case["current"])
        r = stats.ks_2samp(a, b, method=case.get("method", "auto"))
        return {"statistic": float(r.statistic), "pValue": float(r.pvalue)}
    if kind == "kstwobign_sf":
        return {"value": float(stats.kstwobign.sf(case["x"]))}
    if kind == "chisquare":
        expected = np.asarray(case["expected"], dtype=float)
        observed = np.asarray(case["observed"], dtype=float)
        keep = expected > 0
        expected, observed = expected[keep], observed[keep]
        r = stats.chisquare(observed, expected / expected.sum() * observed.sum())
        return {"statistic": float(r.statistic), "pValue": float(r.pvalue)}
    if kind == "jensenshannon":
        return {"value": float(distance.jensenshannon(case["reference"], case["current"]))}
    if kind == "wasserstein":
        p = case["positions"]
        return {"value": float(stats.wasserstein_distance(p, p, case["reference"], case["current"]))}
    if kind == "psi":
        r = np.asarray(case["reference"], dtype=float)
        c = np.asarray(case["current"], dtype=float)
        r = np.maximum(r / r.sum(), 1e-4)
        c = np.maximum(c / c.sum(), 1e-4)
        return {"value": float(np.sum((c - r) * np.log(c / r)))}
    if kind == "ztest":
        k1, n1, k2, n2 = case["k1"], case["n1"], case["k2"], case["n2"]
        p = (k1 + k2) / (n1 + n2)
        z = (k1 / n1 - k2 / n2) / np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
        return {"statistic": float(z), "pValue": float(2 * stats.norm.sf(abs(z)))}
    if kind == "chi2_sf":
        return {"value": float(stats.chi2.sf(case["x"], case["df"]))}
    if kind == "norm_sf":
        return {"value": float(stats.norm.sf(case["x"]))}
    raise ValueError(f"unknown case {kind}")


json.dump([answer(c) for c in json.load(sys.stdin)], sys.stdout)
