#!/usr/bin/env python3
"""Reference values for tests/test_stats.cpp: Welch's t-test with mpmath at 30 digits.

The two-sided p-value is computed twice, independently of pgolf's continued fraction: by mpmath's
regularised incomplete beta (hypergeometric series) and by integrating Student's t density with mpmath.quad;
the script fails if they disagree. Run: python3 scripts/welch_reference.py
"""
import mpmath as mp

mp.mp.dps = 30

CASES = {
    "equal_n3": ([1.10, 1.12, 1.11], [1.08, 1.09, 1.085]),
    "unequal_var_n5_n3": ([2.0, 2.1, 1.9, 2.05, 1.95], [1.5, 2.5, 1.8]),
    "bpb_n3": ([1.0812, 1.0820, 1.0809], [1.0755, 1.0791, 1.0749]),
}


def welch(a, b):
    a = [mp.mpf(repr(v)) for v in a]
    b = [mp.mpf(repr(v)) for v in b]
    ma, mb = mp.fsum(a) / len(a), mp.fsum(b) / len(b)
    va = mp.fsum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = mp.fsum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    t = (mb - ma) / mp.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    p_beta = mp.betainc(df / 2, mp.mpf(1) / 2, 0, df / (df + t * t), regularized=True)
    dens = lambda x: mp.gamma((df + 1) / 2) / (mp.sqrt(df * mp.pi) * mp.gamma(df / 2)) * (1 + x * x / df) ** (-(df + 1) / 2)
    p_quad = 2 * mp.quad(dens, [abs(t), mp.inf])
    assert abs(p_beta - p_quad) < mp.mpf("1e-20"), (p_beta, p_quad)
    return mb - ma, t, df, p_beta


for name, (a, b) in CASES.items():
    d, t, df, p = welch(a, b)
    print(f"{name}: delta {mp.nstr(d, 17)} t {mp.nstr(t, 17)} df {mp.nstr(df, 17)} p {mp.nstr(p, 17)}")
