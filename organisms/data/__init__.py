"""The organisms' generated world: tasks, backdoor data, the corpus, near-miss cues, the trigger condition."""
