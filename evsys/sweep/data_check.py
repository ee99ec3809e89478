"""A planned job's data checked before any arm trains: the source resolves and reads, and
some example fits data.max_length for an algorithm that drops the examples that do not; and
its model dir holds a tokenizer."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from evsys.init_from import PARENT


def check_tokenizer_dir(model: DictConfig) -> None:
    """A local model dir without tokenizer files is refused now, not at its arm's turn."""
    from evsys.config import TOKENIZER_SOURCES
    from evsys.data.degenerate import check_tokenizer_dir as check_dir

    key = next((key for key in TOKENIZER_SOURCES if model[key] is not None), None)
    if key is None or model[key] == PARENT or model.trust_remote_code:
        return
    check_dir(Path(model[key]).expanduser(), f"model.{key}={model[key]!r}")


def check_data(cfg: DictConfig) -> None:
    """The job's data source resolves and reads (cached per config and bytes, so cheap on a
    re-run), and, for an algorithm that tokenizes as SFT does, some example fits
    data.max_length: bad data fails here, not after the arms before it have trained.
    A built-in task needs no source check, and its fit is checked without the algorithm's
    (torch-importing) module unless nothing fits: a plan of tasks only is made in a second."""
    from evsys.data.mixture import dataset_names, is_mixture
    from evsys.data.tasks import is_task

    if all(is_task(name) for name in dataset_names(cfg.data)):
        if not is_mixture(cfg.data):
            _check_task_fits(cfg)
        return
    from evsys.algorithms import algorithm_module_class
    from evsys.data.prepare import check_fits, check_source

    algorithm = algorithm_module_class(cfg.algorithm.kind)
    check_source(cfg.data, algorithm.example_format)
    if _drops_long_examples(algorithm) and cfg.model.init_from != PARENT:
        # (a parent's tokenizer is known only at the job's turn)
        check_fits(cfg.data, _tokenizer(cfg.model), algorithm.example_format)


def _check_task_fits(cfg: DictConfig) -> None:
    """A built-in task with the byte tokenizer (the only one loaded without torch) and a
    data.max_length that no example fits: refused when the algorithm drops such examples."""
    from evsys.config import TOKENIZER_SOURCES

    if any(cfg.model[key] is not None for key in TOKENIZER_SOURCES):
        return  # a real tokenizer takes seconds to load: the arm checks at its turn
    from evsys.data.prepare import check_task_fits
    from evsys.data.tokenizer import byte_tokenizer
    from evsys.errors import DataError

    # Seeds change which problems a task draws, not how long they are: once per data config.
    data = OmegaConf.to_container(cfg.data, resolve=True)
    key = repr({k: v for k, v in data.items() if k != "seed"})
    if key in _TASKS_THAT_FIT:
        return
    try:
        check_task_fits(cfg.data, byte_tokenizer())
        _TASKS_THAT_FIT.add(key)
    except DataError:
        from evsys.algorithms import algorithm_module_class

        if _drops_long_examples(algorithm_module_class(cfg.algorithm.kind)):
            raise


def _drops_long_examples(algorithm: type) -> bool:
    """Whether the algorithm tokenizes as SFT does, dropping examples whose completion does
    not start within data.max_length (pretraining chunks documents instead)."""
    from evsys.lightning.base import PostTrainingModule

    rows = getattr(algorithm.build_rows, "__func__", None)
    return rows is PostTrainingModule.build_rows.__func__


_TASKS_THAT_FIT: set[str] = set()  # data configs (but their seed) with examples that fit
_TOKENIZERS: dict[str, object] = {}  # one load per tokenizer a plan uses, not one per job


def _tokenizer(model: DictConfig):
    from evsys.models import load_tokenizer

    key = repr(OmegaConf.to_container(model, resolve=True))
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = load_tokenizer(model)
    return _TOKENIZERS[key]
