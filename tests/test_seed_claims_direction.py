"""SeedComparison.verdict(direction_only=True): a gap beyond the std rule at p >= 0.05 is only a
direction; at p < 0.05 and within the rule the verdict is the default one."""
from gsoplib.viz.seed_claims import compare_seeds


def test_direction_only_when_rule_passes_but_p_does_not():
    weak = compare_seeds([98.4, 98.25, 98.55], [98.65, 98.6, 98.7])      # beyond the rule, p ~0.1
    assert weak.beyond_noise and weak.p >= 0.05
    assert weak.verdict().startswith("reversed")
    assert weak.verdict(direction_only=True).startswith("direction only (below; std rule passed")
    strong = compare_seeds([10.0, 10.1, 9.9], [5.0, 5.1, 4.9])
    assert strong.p < 0.05 and strong.verdict(direction_only=True) == strong.verdict()
    assert strong.verdict().startswith("holds")
    noise = compare_seeds([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert noise.verdict(direction_only=True) == noise.verdict()
    assert noise.verdict().startswith("seed noise")
