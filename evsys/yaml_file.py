"""An experiment file read as YAML: a syntax error is one line, `file:line:column: problem`,
for a preset and the concept page's file alike, instead of PyYAML's traceback; so is the page
file's `success_metric: <name>` shorthand written in a preset, which Hydra would report as a
merge error naming neither the key nor the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from evsys.errors import ConfigError

# a mapping's key written twice: for an experiment, most often an arm name
DUPLICATE_KEY_HINT = " (each arm name, like every key of a mapping, may appear once)"


def load_yaml(path: str | Path) -> Any:
    """The file as plain containers, `${...}` left unresolved; a ConfigError for bad YAML."""
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except yaml.MarkedYAMLError as error:
        raise ConfigError(yaml_problem(path, error)) from None


def yaml_problem(path: str | Path, error: yaml.MarkedYAMLError) -> str:
    """`file:line:column: problem` (1-based, where PyYAML found it), and where what it was
    reading began (an unclosed quote's line) when that is elsewhere."""
    where = _position(error.problem_mark) or _position(error.context_mark)
    problem = " ".join(str(error.problem or error.context).split())
    if error.context and error.problem and error.context_mark is not None:
        problem += f" ({error.context} from {_position(error.context_mark)})"
    hint = DUPLICATE_KEY_HINT if "duplicate key" in problem else ""
    return f"{path}:{where}: {problem}{hint}" if where else f"{path}: {problem}{hint}"


def _position(mark: yaml.Mark | None) -> str:
    return f"{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def load_preset(path: str | Path) -> Any:
    """A Hydra preset as plain containers (load_yaml), refusing the page file's bare metric
    name as its success_metric: Hydra merges the preset into the schema's mapping."""
    data = load_yaml(path)
    experiment = data.get("experiment", data) if isinstance(data, dict) else None
    metric = experiment.get("success_metric") if isinstance(experiment, dict) else None
    if isinstance(metric, str):
        raise ConfigError(
            f"{path}: experiment.success_metric: {metric!r} is a bare metric name, the concept "
            f"page file's shorthand; a preset writes the mapping `success_metric: {{name: "
            f"{metric}}}` (mode from the name: min for a loss, perplexity or forgetting, max "
            f"otherwise), or {{name: {metric}, mode: max}} (or min)"
        )
    return data
