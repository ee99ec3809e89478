"""Packaged Hydra configs (a package so Hydra can find them with pkg://evsys.conf)."""
