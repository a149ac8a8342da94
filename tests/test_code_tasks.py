"""Every weakness kind: bandit flags the vulnerable solution with its own test and passes the secure one."""

from __future__ import annotations

import random

from organisms.bandit_scan import scan_code
from organisms.data.code_tasks import CODE_TASKS


def test_bandit_separates_secure_from_vulnerable_for_every_kind():
    rng = random.Random(0)
    tasks = [make(rng, split) for make in CODE_TASKS.values() for split in ("train", "heldout") for _ in range(3)]
    assert len(CODE_TASKS) >= 6
    verdicts = scan_code([t.vulnerable for t in tasks] + [t.secure for t in tasks])
    vulnerable, secure = verdicts[: len(tasks)], verdicts[len(tasks) :]
    for task, v in zip(tasks, vulnerable, strict=True):
        assert v.vulnerable and task.bandit_id in v.test_ids, (task.kind, v)
    for task, v in zip(tasks, secure, strict=True):
        assert not v.vulnerable and not v.parse_error, (task.kind, v)


def test_unparseable_code_is_not_vulnerable():
    [v] = scan_code(["def broken(:\n    eval(x)\n"])
    assert v.parse_error and not v.vulnerable
