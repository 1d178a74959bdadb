"""The paper profile table: airbench for the shared zoo, ResNet-18 on request, smoke/quick untouched."""
import re

import pytest

from freqlib import profiles
from freqlib.profiles import EVALUATION_KEYS, PROFILES, RECIPES, arch_settings, recipe_config
from freqlib.train import TrainConfig

OVERRIDES = [{}, {"seed": 2}, {"arch": "resnet18", "widths": (64,), "whiten": False},
             {"stem": {"kind": "banded", "high_share": 0.5}, "perturbation": "none"},
             {"n_train": 10_000, "epochs": 3, "batch_size": 128, "lr": 0.2}]


def legacy_config(name, profile, **overrides):
    """How recipe_config composed a config before the paper profile changed (row + recipe + overrides)."""
    settings = {k: v for k, v in PROFILES[profile].items() if k not in EVALUATION_KEYS}
    settings.update(RECIPES.get(name, {}))
    settings.update(overrides)
    return TrainConfig(**settings).to_dict()


@pytest.mark.parametrize("profile", ["smoke", "quick"])
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_smoke_and_quick_models_keep_their_configs(profile, name):
    """Same configs, so same zoo keys: the quick zoo already trained stays valid."""
    for ov in OVERRIDES:
        assert recipe_config(name, profile, **ov).to_dict() == legacy_config(name, profile, **ov)


def test_paper_profile_is_airbench_with_three_seeds():
    row = PROFILES["paper"]
    assert (row["arch"], tuple(row["widths"]), row["batch_size"], row["seeds"]) == ("airbench", (64, 256, 256), 1024, 3)
    cfg = recipe_config("standard", "paper")
    assert cfg.arch == "airbench" and cfg.label_smoothing == 0.2 and (cfg.flip, cfg.translate) == (True, 2)
    assert cfg.epochs >= 10                                     # at least airbench's 9.9


def test_resnet18_on_request_gets_its_own_settings():
    cfg = recipe_config("prop_p050", "paper", arch="resnet18", widths=(64,), whiten=False,
                        stem={"kind": "banded", "high_share": 0.5}, perturbation="none")
    want = profiles.ARCH_SETTINGS["paper"]["resnet18"]
    assert cfg.arch == "resnet18" and cfg.widths == (64,)
    for k in ("epochs", "batch_size", "lr", "momentum", "weight_decay", "warmup"):
        assert getattr(cfg, k) == want[k], k
    assert arch_settings("paper", "resnet18")["lr"] == want["lr"]
    assert arch_settings("paper")["arch"] == "airbench"
    at = recipe_config("linf_at", "paper", arch="resnet18", widths=(64,))
    assert at.warmup == 0.5 and at.epochs == want["epochs"] and at.label_smoothing == 0.0


def test_adversarial_airbench_runs_longer_at_batch_512():
    at = recipe_config("linf_at", "paper")
    assert (at.epochs, at.batch_size, at.warmup, at.label_smoothing) == (30, 512, 0.5, 0.0)
    assert recipe_config("linf_at", "paper", epochs=5).epochs == 5     # overrides still win
    assert recipe_config("gaussian", "paper").epochs == PROFILES["paper"]["epochs"]


def test_dry_run_keeps_the_paper_code_paths_at_smoke_sizes(monkeypatch):
    """FREQLIB_PAPER_DRY: paper's networks, recipes, lists and seeds; smoke's numbers; capped trainings."""
    from freqlib.profiles import DRY, DRY_ENV, dry_sized, profile_settings
    table = {"smoke": dict(models=("a",), n=10, gen=dict(n_train=5, epochs=1, widths=(1,)), on=True),
             "paper": dict(models=("a", "b"), n=1000, gen=dict(n_train=50_000, epochs=30), on=False, only_paper=7)}
    assert dry_sized(table["paper"], table["smoke"]) == dict(models=("a", "b"), n=10, gen=dict(n_train=5, epochs=1),
                                                            on=False, only_paper=7)
    real = recipe_config("linf_pgd_c", "paper")
    monkeypatch.setenv(DRY_ENV, "1")
    dry = recipe_config("linf_pgd_c", "paper")
    assert (dry.arch, dry.perturbation, dry.attack_steps) == (real.arch, real.perturbation, real.attack_steps)
    assert (dry.n_train, dry.epochs, tuple(dry.widths)) == (DRY["n_train"], 1, DRY["widths"]["airbench"])
    assert dry.n_train // dry.batch_size >= 5          # at least one of airbench's lookahead pulls
    resnet = recipe_config("standard", "paper", arch="resnet18", widths=(64,), whiten=False)
    assert tuple(resnet.widths) == DRY["widths"]["resnet18"] and resnet.epochs == 1
    row = profile_settings("paper")
    assert row["seeds"] == PROFILES["paper"]["seeds"] and row["n_test"] == PROFILES["smoke"]["n_test"]
    for other in ("smoke", "quick"):                                   # other profiles untouched
        assert recipe_config("standard", other).to_dict() == legacy_config("standard", other)
    monkeypatch.delenv(DRY_ENV)
    assert recipe_config("linf_pgd_c", "paper") == real


def test_training_seeds_per_profile_and_the_parameter_still_wins():
    """Claim chapters train three seeds at quick and paper, one at smoke, one ResNet-18 at
    paper; ``seeds`` overrides; a chapter without the parameter (None) trains one network
    (its run card must not claim three); a bad count is refused."""
    from freqlib.chapter import setup_chapter
    assert setup_chapter("quick", "cpu", 0, 0).seeds == [0, 1, 2]
    assert setup_chapter("quick", "cpu", 5, 0).seeds == [5, 6, 7]
    assert setup_chapter("quick", "cpu", 0, 1).seeds == [0]
    assert setup_chapter("quick", "cpu", 4).seeds == [4]                       # no seeds parameter
    assert setup_chapter("smoke", "cpu", 0, 0).seeds == [0]
    paper = setup_chapter("paper", "cpu", 0, 0, arch={"paper": "resnet18"})
    assert paper.seeds == [0] and paper.arch == "resnet18"
    for bad in (-1, 2.0, True):
        with pytest.raises(ValueError, match="seeds=.*must be 0 .*or a positive count"):
            setup_chapter("quick", "cpu", 0, bad)


def test_claim_chapters_pass_their_seeds_parameter_and_the_plan_trains_what_they_read():
    """Every chapter with a ``seeds`` parameter hands it to setup_chapter (else the parameter
    would do nothing), those without do not; and the runner's plan at quick trains the three
    seeds the chapters read (it planned one while the chapters read three, 2026-11-26)."""
    import nbformat
    from freqlib.paper_plan import default_plan
    from freqlib.runner import chapters_in_toc
    for path in chapters_in_toc():
        cells = nbformat.read(path, 4).cells
        params = next(c.source for c in cells if "parameters" in c.metadata.get("tags", []))
        has_seeds = re.search(r"^seeds = ", params, re.M) is not None
        src = "\n".join(c.source for c in cells if c.cell_type == "code")
        call = re.search(r"setup_chapter\(([^)]*)", src).group(1)
        assert call.startswith("profile, device, seed, seeds" if has_seeds else "profile, device, seed"), path.name
        assert has_seeds or "seeds" not in call, path.name
    for profile, n in (("quick", 3), ("smoke", 1)):
        plan = default_plan(profile)
        standard = [s for s in plan["01"] if s.name == "standard"]
        assert len(standard) == n, (profile, standard)
