"""Shattered gradients: the judge on hand-built per-seed numbers, one test per outcome
(reproduced, partly, not resolved, contradicted part by part, not judged) and the findings."""

import pytest

from reslab.experiments import base, shattered, verdicts

CFG = shattered.config_for("quick", seeds=5)
GOOD = dict(plain=(0.0, 0.02, -0.02, 0.01, -0.01), plain_0=(0.97, 0.98, 0.97, 0.96, 0.97),
            plain_r=(0.01, -0.01, 0.0, 0.02, -0.02), res=(0.93, 0.92, 0.94, 0.93, 0.92),
            res_0=(0.97, 0.98, 0.97, 0.97, 0.98), small=(0.98, 0.97, 0.98, 0.98, 0.97), res_hw=(8, 9, 10, 8, 9))


def fake(**over):
    """Per-seed numbers in the shape run() stores them; brown noise lag-1 0.97, half-width 25."""
    v = {k: list(x) for k, x in {**GOOD, **over}.items()}
    noise = {"brown noise": {"lag1": {"mean": 0.97}, "halfwidth": {"mean": 25.0}},
             "white noise": {"lag1": {"mean": 0.0}, "halfwidth": {"mean": 0.5}}}
    return {"lag1": {"plain": {"2": {"values": v["plain_0"]}, "24": {"values": v["plain"]}, "50": {"values": v["plain_r"]}},
                     "resnet_beta=1": {"2": {"values": v["res_0"]}, "50": {"values": v["res"]}},
                     "resnet_beta=0.1": {"50": {"values": v["small"]}}},
            "halfwidth": {"resnet_beta=1": {"50": {"values": v["res_hw"]}}}, "noise": noise}


def _part(v, word):
    return next(p for p in v["parts"] if word in p["name"])


def test_judge_reproduced_on_good_numbers():
    v = shattered.judge(CFG, fake())
    assert v["outcome"] == base.REPRODUCED and all(p["status"] == "shown" for p in v["parts"])
    assert all(p["source"] and p["quote"] for p in v["parts"]) and v["unread"]


@pytest.mark.parametrize("bad, word", [
    (dict(plain=(0.5, 0.6, 0.55, 0.5, 0.6)), "like white noise"),               # CI clear of ±0.1
    (dict(plain_0=(-0.3, -0.2, -0.25, -0.3, -0.2)), "whitens with depth"),       # shallow net is whiter
    (dict(plain_r=(0.97, 0.98, 0.97, 0.96, 0.97)), "resists shattering"),       # plain net keeps its lag-1
    (dict(res_hw=(40, 42, 41, 43, 40)), "in between"),                          # band wider than brown noise's
    (dict(res=(0.05, 0.0, -0.05, 0.02, 0.0), res_hw=(0.5, 0.6, 0.4, 0.5, 0.5)), "in between"),  # white
    (dict(small=(0.90, 0.91, 0.90, 0.89, 0.90)), "resembles brown noise"),      # rougher than 2x brown, below β = 1
])
def test_judge_contradicted_on_adverse_numbers(bad, word):
    v = shattered.judge(CFG, fake(**bad))
    assert v["outcome"] == base.CONTRADICTED and _part(v, word)["status"] == "contradicted"
    assert v["summary"].startswith("Contradicted:") and word in v["summary"].split(". ")[0]
    assert all(c["passed"] for c in v["checks"])  # adverse numbers, sound instrument


def test_judge_partly_when_a_part_straddles_its_criterion():
    v = shattered.judge(CFG, fake(plain=(0.05, 0.15, 0.1, 0.08, 0.12)))  # CI across the +0.1 edge
    assert v["outcome"] == base.PARTLY and _part(v, "like white noise")["status"] == "not resolved"
    assert [p["status"] for p in v["parts"]].count("shown") == 4


def test_judge_not_resolved_when_every_part_straddles():
    edge = (0.05, 0.15, 0.1, 0.08, 0.12)
    v = shattered.judge(CFG, fake(plain=edge, plain_0=edge[::-1], plain_r=edge[::-1], res=edge,
                                  res_0=(0.06, 0.14, 0.12, 0.06, 0.12), res_hw=(0.5, 1.5, 1.0, 0.8, 1.2),
                                  small=(0.92, 0.96, 0.94, 0.93, 0.95)))
    assert v["outcome"] == base.NOT_RESOLVED and {p["status"] for p in v["parts"]} == {"not resolved"}


def test_judge_not_judged_without_what_the_criteria_need():
    data = fake()
    del data["lag1"]["plain"]["24"]
    assert shattered.judge(CFG, data)["outcome"] == base.NOT_JUDGED
    assert "two betas" in shattered.judge(shattered.config_for("quick", betas=(1.0,)), fake())["summary"]
    v = shattered.judge(shattered.config_for("quick", depths=(24, 50)), fake())
    assert v["outcome"] == base.NOT_JUDGED and "depth below 24" in v["summary"]
    one_seed = fake(**{k: x[:1] for k, x in GOOD.items()})
    assert "2 seeds" in shattered.judge(CFG, one_seed)["summary"]


def test_findings_have_criteria_and_do_not_change_the_outcome():
    data = fake()
    data["context"] = {"block": "preact", "lag1": {"resnet_beta=1": {"50": {"values": [0.6, 0.7, 0.65, 0.7, 0.6]}},
                                                   "resnet_beta=0.1": {"50": {"values": [0.9] * 5}}}}
    zero = "24-layer plain, no BN, zero biases"
    data["traps"] = {zero: {"distinct_values": {"mean": 40.0, "max": 41, "n": 5}, "lag1": {}}}
    v = shattered.judge(CFG, data)
    assert v["outcome"] == base.REPRODUCED
    f = {x["name"].split(":")[0]: x for x in v["findings"]}
    assert f["block layout"]["status"] == "shown" and "chosen by this outcome" in f["block layout"]["observed"]
    assert f[zero]["status"] == "contradicted"  # 41 distinct values: the homogeneity trap did not hold
    seed = next(x for x in v["findings"] if x["source"] == verdicts.SEED_ARTICLE)
    assert seed["prediction"] and seed["status"] == "contradicted"  # β = 1: 1 - lag-1 0.072 > 2 x 0.03
    assert all(x["criterion"] for x in v["findings"])
