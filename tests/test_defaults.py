"""Defaults live in the dataclasses (evsys/config.py) once: every group option, composed as the
CLI composes it, equals its schema's defaults except for keys the option's YAML sets on
purpose, each with a comment saying why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from evsys import compose_run_config
from evsys.algorithms import algorithm_schema
from evsys.config import GROUP_SCHEMAS

CONF = Path(__file__).resolve().parents[1] / "evsys" / "conf"
GROUPS = ("model", "algorithm", "backend", "data", "eval", "validation", "logger")


def options() -> list[tuple[str, str]]:
    return [
        (group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))
    ]


def flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def has_comment(text: str, key: str) -> bool:
    """The line setting `key` (its last component) has a comment, or the line above it is one."""
    lines = text.splitlines()
    leaf = key.rsplit(".", 1)[-1]
    for index, line in enumerate(lines):
        if re.match(rf"\s*{re.escape(leaf)}:", line):
            above = lines[index - 1].strip() if index else ""
            return "#" in line.split(":", 1)[1] or above.startswith("#")
    return False


@pytest.mark.integration
@pytest.mark.parametrize(("group", "option"), options())
def test_group_option_equals_its_schema_defaults_except_commented_keys(group, option):
    # a reward model generates no text: it composes only without benchmarks to score
    extra = ["eval.benchmarks=[]"] if (group, option) == ("algorithm", "reward_model") else []
    composed = compose_run_config([f"{group}={option}", *extra])
    node = OmegaConf.to_container(composed[group], resolve=True)
    schema = GROUP_SCHEMAS.get(group) or algorithm_schema(node["kind"])
    defaults = OmegaConf.to_container(OmegaConf.structured(schema), resolve=True)
    differing = {
        key for key, value in flat(node).items() if flat(defaults).get(key, object()) != value
    }
    text = (CONF / group / f"{option}.yaml").read_text()
    undocumented = sorted(key for key in differing if not has_comment(text, key))
    assert not undocumented, f"{group}/{option}.yaml differs from its dataclass without a comment"
    set_in_yaml = {
        match.group(1)
        for match in re.finditer(r"^(\w+):", text, re.M)
        if match.group(1) not in ("defaults", "kind")
    }
    redundant = sorted(
        key for key in set_in_yaml if not any(k.split(".")[0] == key for k in differing)
    )
    assert not redundant, f"{group}/{option}.yaml repeats dataclass defaults: {redundant}"


def test_dataclass_defaults_are_what_composing_gives():
    """The bug this guards: GRPOConfig() said lr 3e-3 while algorithm=grpo composed 1e-4."""
    from evsys.config import GRPOConfig

    composed = compose_run_config(["algorithm=grpo"]).algorithm
    assert OmegaConf.to_container(composed) == OmegaConf.to_container(
        OmegaConf.structured(GRPOConfig)
    )
