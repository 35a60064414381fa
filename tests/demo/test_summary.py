"""The demo summary's per-parcel skill, computed by hand."""

from __future__ import annotations

import math

import pandas as pd

from soilclay.demo.summary import parcel_skill


def test_parcel_skill_against_hand_computation():
    est = pd.DataFrame({"parcel_id": ["a", "b", "c", "d"], "clay": [10.0, 20.0, 33.0, None],
                        "clay_lower": [8.0, 18.0, 31.0, None], "clay_upper": [12.0, 22.0, 34.0, None]})
    truth = pd.DataFrame({"parcel_id": ["a", "b", "c", "d", "e"], "clay_true_mean": [11.0, 19.0, 30.0, 5.0, 7.0]})
    skill = parcel_skill(est, truth)
    y, p = [11.0, 19.0, 30.0], [10.0, 20.0, 33.0]
    ss_res = sum((a - b) ** 2 for a, b in zip(y, p, strict=True))
    ss_tot = sum((a - 20.0) ** 2 for a in y)
    assert skill.n == 3  # 'd' has no number (flagged), 'e' no estimate
    assert math.isclose(skill.r2, 1 - ss_res / ss_tot) and math.isclose(skill.rmse, math.sqrt(ss_res / 3))
    assert math.isclose(skill.inside_interval, 2 / 3)  # 30 is outside [31, 34]
    assert parcel_skill(est.iloc[3:], truth) is None
