"""A toy algorithm from outside evsys: its config, its LightningModule, its own data shape.

Trains on "unpaired labelled" rows (KTO's data: prompt, completion, label) and learns only
the examples labelled good — registered through the `evsys.algorithms` entry point.
"""

from __future__ import annotations

from dataclasses import dataclass

from evsys.algorithms import Algorithm
from evsys.config import AlgorithmConfig
from evsys.data.formats import ExampleFormat
from evsys.lightning.sft import SFTModule


@dataclass
class ToyConfig(AlgorithmConfig):
    kind: str = "toy"
    good_only: bool = True  # train only on rows labelled good


def labelled_example(row: dict) -> dict:
    return {"prompt": row["prompt"], "completion": row["completion"], "label": bool(row["label"])}


class ToyModule(SFTModule):
    """SFT on the good rows of unpaired labelled data."""

    example_format = ExampleFormat("labelled", ("prompt", "completion", "label"), labelled_example)

    @classmethod
    def build_rows(cls, examples, tokenizer, cfg, split):
        kept = [ex for ex in examples if ex["label"] or not cfg.algorithm.good_only]
        return super().build_rows(kept, tokenizer, cfg, split)


ALGORITHM = Algorithm(ToyConfig, f"{__name__}:ToyModule")
