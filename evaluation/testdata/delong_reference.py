#!/usr/bin/python3
"""Independent reference values for evaluation's tests (pure Python, no numpy).

Straight from the definitions, O(m·n): the Mann–Whitney AUC with ties counted
half, DeLong's placement values V10/V01, their sample (co)variances, and the
paired test of DeLong, DeLong & Clarke-Pearson (Biometrics 1988). Run once;
the printed numbers are pasted into evaluation_test.go.
"""
import math


def psi(x, y):
    return 1.0 if x > y else 0.5 if x == y else 0.0


def placements(scores, labels):
    pos = [s for s, l in zip(scores, labels) if l]
    neg = [s for s, l in zip(scores, labels) if not l]
    v10 = [sum(psi(x, y) for y in neg) / len(neg) for x in pos]
    v01 = [sum(psi(x, y) for x in pos) / len(pos) for y in neg]
    return sum(v10) / len(v10), v10, v01


def cov(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    return sum((x - ma) * (y - mb) for x, y in zip(a, b)) / (len(a) - 1)


def var_auc(scores, labels):
    auc, v10, v01 = placements(scores, labels)
    return auc, cov(v10, v10) / len(v10) + cov(v01, v01) / len(v01)


def phi_upper2(z):  # two-sided p
    return math.erfc(abs(z) / math.sqrt(2))


Z975 = 1.959963984540054

# Hanley & McNeil, Radiology 1982, table 1: CT ratings 1..5 of 58 normal and
# 51 abnormal cases; published AUC 0.893.
normal = [33, 6, 6, 11, 2]
abnormal = [3, 2, 2, 11, 33]
s, l = [], []
for r, (n, a) in enumerate(zip(normal, abnormal), start=1):
    s += [r] * (n + a)
    l += [False] * n + [True] * a
auc, v = var_auc(s, l)
se = math.sqrt(v)
print("hanley-mcneil auc %.15g se %.15g ci %.15g %.15g" % (auc, se, auc - Z975 * se, auc + Z975 * se))

# A small paired example with ties inside and across engines.
labels = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
a = [0.9, 0.8, 0.8, 0.7, 0.55, 0.4, 0.3, 0.6, 0.5, 0.4, 0.3, 0.3, 0.2, 0.1, 0.05]
b = [0.7, 0.9, 0.5, 0.6, 0.65, 0.2, 0.45, 0.8, 0.2, 0.5, 0.1, 0.45, 0.3, 0.15, 0.05]
lab = [x == 1 for x in labels]
auca, v10a, v01a = placements(a, lab)
aucb, v10b, v01b = placements(b, lab)
m, n = len(v10a), len(v01a)
s10 = [[cov(v10a, v10a), cov(v10a, v10b)], [cov(v10b, v10a), cov(v10b, v10b)]]
s01 = [[cov(v01a, v01a), cov(v01a, v01b)], [cov(v01b, v01a), cov(v01b, v01b)]]
va = s10[0][0] / m + s01[0][0] / n
vb = s10[1][1] / m + s01[1][1] / n
cab = s10[0][1] / m + s01[0][1] / n
vd = va + vb - 2 * cab
d = auca - aucb
z = d / math.sqrt(vd)
print("paired aucA %.15g aucB %.15g seA %.15g seB %.15g" % (auca, aucb, math.sqrt(va), math.sqrt(vb)))
print("paired diff %.15g se %.15g z %.15g p %.15g ci %.15g %.15g" % (
    d, math.sqrt(vd), z, phi_upper2(z), d - Z975 * math.sqrt(vd), d + Z975 * math.sqrt(vd)))
