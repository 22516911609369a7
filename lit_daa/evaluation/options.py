"""How a checkpoint is evaluated: every option in one dataclass, read by `lit-daa evaluate`, by sweeps (their
`evaluation:` block) and by `evaluate_policy`, so each default is written once."""

from __future__ import annotations

from dataclasses import dataclass, field

from jsonargparse import lazy_instance

from lit_daa.data.sources import PreferenceSource
from lit_daa.evaluation.judges import GoldRewardJudge, Judge
from lit_daa.synthetic.world import SyntheticWorld

SYNTHETIC = "synthetic"


@dataclass
class EvaluationOptions:
    """Evaluation prompts, judge, sampling and devices.

    Args:
        judge: compares each policy sample with the prompt's reference response (win rate).
        prompts: a .jsonl/.csv file with `prompt` and `reference` columns, or `synthetic` for the embedded world.
        world: the synthetic world drawing the evaluation prompts (match it to the training data's world).
        prompts_seed: seed of the synthetic evaluation set (keep it apart from the training data's seeds).
        num_prompts: prompts evaluated per checkpoint (the first ones; the paper: 256).
        max_new_tokens: most tokens per sampled response (EOS included).
        max_prompt_length: keep only the last this many prompt tokens; None: all.
        temperature: sampling temperature (1.0: the samples are the policy's own and the KL estimate is a KL; at
            another temperature it is not, and the results table records which was used).
        batch_size: prompts per generate / forward pass.
        seed: sampling seed (the same for every checkpoint, so checkpoints differ only by their weights).
        forward_kl: also estimate KL(pi_ref || pi) from reference samples.
        dtype: dtype both models are loaded in for evaluation.
        device: cpu, cuda, cuda:1, ...; None: CUDA when available.
        save_samples: keep each checkpoint's samples (prompt, response, verdict, log-ratio) as JSONL.
        training_data: the preference source the evaluated policies were trained on (the fit config's
            `data.source`, e.g. `lit_daa.synthetic.source.SharedPreferencePairs` with the same init_args); the
            tokens of its training answers, plus EOS and pad, are the in-data tokens of the `ood_mass` and
            `ood_token_share` columns (lit_daa/evaluation/ood.py). None: those two columns are NaN.
    """

    judge: Judge = field(default_factory=lambda: lazy_instance(GoldRewardJudge))
    prompts: str = SYNTHETIC
    world: SyntheticWorld = field(default_factory=SyntheticWorld)
    prompts_seed: int = 12345
    num_prompts: int = 256
    max_new_tokens: int = 64
    max_prompt_length: int | None = None
    temperature: float = 1.0
    batch_size: int = 32
    seed: int = 0
    forward_kl: bool = True
    dtype: str = "float32"
    device: str | None = None
    save_samples: bool = True
    training_data: PreferenceSource | None = None
