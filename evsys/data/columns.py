"""The schema of `data.columns`: which source column holds each column evsys reads (its own
module so that evsys/config.py stays one screenful per group)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DataColumns:
    """The source's column for each column evsys reads; None: a column of that very name."""

    prompt: str | None = None  # e.g. question
    completion: str | None = None  # e.g. response
    answer: str | None = None  # prompt_answer data; None: "answer", else "reference"
    messages: str | None = None  # chat data: a list of {role, content}
    text: str | None = None  # plain text data, trained on every token
    chosen: str | None = None  # preference data: the preferred answer
    rejected: str | None = None  # preference data: the dispreferred answer
