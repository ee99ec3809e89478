"""Which code, packages and machine made a result: gathered once per process.

Every arm record (result.json) and every plan (experiment.json) carries `collect()`:

    code       the git checkout evsys runs from: commit, dirty (tracked files differ from the
               commit), diff_sha256 (a hash of `git diff HEAD`), repo; NOT_A_CHECKOUT when
               evsys is installed from a wheel
    cwd_code   the same for the current directory's checkout, when it is another one
    versions   evsys and its main dependencies (absent packages are left out)
    python, host, device (CPU model, GPU names and count)
    command    this process's command line, as typed

The diff itself is not in a record (it may be long): a sweep saves it beside its plan
(evsys/sweep/experiment.py). Nothing here imports torch: a sweep's start-up stays light.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shlex
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

NOT_A_CHECKOUT = "not a git checkout"
DIFF_FILE = "code.diff"  # <sweep dir>/code.diff: the uncommitted changes the plan's code had
PACKAGES = (
    "evsys", "torch", "lightning", "transformers", "datasets", "hydra-core", "omegaconf", "peft",
)  # fmt: skip
GIT_TIMEOUT_S = 5  # a hung network filesystem must not hang a run's start


@functools.cache
def collect() -> dict[str, Any]:
    """This process's provenance (see the module docstring); the same dict on every call."""
    package_dir = Path(__file__).resolve().parent
    code = _checkout(package_dir, tracked="__init__.py")
    info: dict[str, Any] = {"code": code}
    cwd_code = _checkout(Path.cwd())
    if cwd_code.get("repo") and cwd_code.get("repo") != code.get("repo"):
        info["cwd_code"] = cwd_code
    info["versions"] = versions()
    info["python"] = platform.python_version()
    info["host"] = socket.gethostname()
    info["device"] = device()
    info["command"] = shlex.join(getattr(sys, "orig_argv", sys.argv))  # as typed: python -m ...
    return info


def code_diff() -> str:
    """The uncommitted changes (`git diff HEAD`) of the checkout evsys runs from; "" if none."""
    return _git_state(Path(__file__).resolve().parent, "__init__.py")[1]


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def device() -> dict[str, Any]:
    """The CPU model and core count, and the GPUs this process sees (names and count)."""
    gpus = _gpu_names()
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": gpus[0] if gpus else None,
        "gpu_count": len(gpus),
    }


def code_label(provenance: dict[str, Any] | None) -> str:
    """`abc123def456 (dirty, diff 1f2e3d4c5b6a)`, or NOT_A_CHECKOUT: the code, in a line."""
    code = (provenance or {}).get("code") or {}
    if not code.get("commit"):
        return code.get("error") or NOT_A_CHECKOUT
    dirty = f" (dirty, diff {code.get('diff_sha256')})" if code.get("dirty") else ""
    return f"{code['commit'][:12]}{dirty}"


def described(provenance: dict[str, Any] | None) -> list[str]:
    """The provenance as a few `key: value` lines, for a person to read."""
    if not provenance:
        return ["provenance: none recorded (written by an older evsys)"]
    device = provenance.get("device") or {}
    gpus = f", {device['gpu_count']} x {device['gpu']}" if device.get("gpu_count") else ""
    lines = [f"code: {code_label(provenance)} {(provenance.get('code') or {}).get('repo', '')}"]
    if provenance.get("cwd_code"):
        lines.append(f"working dir's code: {code_label({'code': provenance['cwd_code']})}")
    versions = provenance.get("versions") or {}
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    lines.append(f"python {provenance.get('python')} on {provenance.get('host')}")
    lines.append(f"device: {device.get('cpu')} ({device.get('cpu_count')} cores){gpus}")
    lines.append(f"command: {provenance.get('command')}")
    return lines


def code_changed(before: dict[str, Any] | None, now: dict[str, Any] | None) -> bool:
    """Whether two provenances name other code: the commit or the uncommitted diff differ."""
    keys = ("commit", "dirty", "diff_sha256")
    old, new = (before or {}).get("code") or {}, (now or {}).get("code") or {}
    return bool(old) and any(old.get(key) != new.get(key) for key in keys)


def _checkout(path: Path, tracked: str | None = None) -> dict[str, Any]:
    """The commit and state of the git checkout at `path` (one that tracks `path/tracked`)."""
    commit, diff, repo, error = _git_state(path, tracked)
    if error:
        return {"error": error}
    return {
        "repo": repo,
        "commit": commit,
        "dirty": bool(diff),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else None,
    }


@functools.cache
def _git_state(path: Path, tracked: str | None) -> tuple[str, str, str, str | None]:
    """(commit, diff against it, repo root, error): error says why there is no commit."""
    try:
        repo = _git(path, "rev-parse", "--show-toplevel")
        # evsys installed from a wheel into a venv inside some repo is not that repo's code
        if tracked and not _git(path, "ls-files", tracked):
            return "", "", "", NOT_A_CHECKOUT
        commit = _git(path, "rev-parse", "HEAD")
        diff = _git(path, "diff", "HEAD", "--no-color", "--no-ext-diff", strip=False)
    except (OSError, subprocess.SubprocessError):
        return "", "", "", NOT_A_CHECKOUT
    return commit, diff, repo, None


def _git(path: Path, *arguments: str, strip: bool = True) -> str:
    done = subprocess.run(
        ["git", "-C", str(path), *arguments],
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=True,
    )
    return done.stdout.strip() if strip else done.stdout


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_names() -> list[str]:
    """The NVIDIA GPUs this process may use (CUDA_VISIBLE_DEVICES), from nvidia-smi: asking
    torch would start CUDA in this process, which a forked DDP worker or a CPU arm must not."""
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    names = [name.strip() for name in listed.splitlines() if name.strip()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return names
    ids = [part.strip() for part in visible.split(",") if part.strip()]
    if all(part.isdigit() for part in ids):
        return [names[int(part)] for part in ids if int(part) < len(names)]
    return names[: len(ids)]  # GPU UUIDs: the count is right, the names the first ones
