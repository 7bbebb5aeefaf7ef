"""Small real tokenizers for the tiny test models, trained with the `tokenizers` library.

Deterministic: the same special tokens give the same vocabulary, so tiny models rebuilt on
another machine tokenize identically.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from promptlam.tasks import TASK_TEXT

_CORPUS = [
    "Do not describe background features. Focus on the robot arm and the {object}.",
    "Describe the image.",
    "The robot arm is trying to {task}. Describe what it does.",
    "user assistant system USER: ASSISTANT: <|im_start|> <|im_end|> Question: Answer:",
    "A red robot arm above a wooden table with a puck, a drawer, a door, a window and a button.",
]


def _corpus() -> list[str]:
    texts = []
    for template in _CORPUS:
        for task, obj in TASK_TEXT.values():
            texts.append(template.format(task=task, object=obj))
    return texts * 3


def make_tokenizer(special_tokens: list[str], *, vocab_size: int = 512, bos: str | None = "<s>",
                   eos: str = "</s>", pad: str = "<pad>", unk: str = "<unk>",
                   extra_special_tokens: dict[str, str] | None = None,
                   chat_template: str | None = None, **kwargs) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with ``special_tokens`` (plus bos/eos/pad/unk) as single ids."""
    base = [t for t in (pad, bos, eos, unk) if t]
    specials = base + [t for t in special_tokens if t not in base]
    tokenizer = Tokenizer(models.BPE(unk_token=unk))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=unk,
        extra_special_tokens=extra_special_tokens or {}, **kwargs,
    )
    if chat_template:
        fast.chat_template = chat_template
    return fast
