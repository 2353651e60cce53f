"""Compose a command's config and check it before anything runs: every mistake is one line.

- an override of a key the schema does not know (``+`` or not) is refused, naming the nearest
  real fields (``steps`` → ``optim.steps``);
- a group choice (``agent=…``) must be one of the group's YAML files; the schema entries Hydra
  keeps in the same groups (``agent_schema``) are not choices;
- values are checked against the rules their schema field declares (``drive.fields``): ranges and
  choices;
- Hydra's and OmegaConf's own errors (a lexer error, a value of the wrong type) are cut to their
  first line and the key they concern.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from drive.fields import attribute_docs, broken_rule, describe_rules

CONF_DIR = Path(__file__).resolve().parent / "conf"
#: suffix of the schema entries registered in the config groups (``agent/agent_schema``)
SCHEMA_SUFFIX = "_schema"


class ConfigProblem(ValueError):
    """A configuration the command refuses; the message is one line that says what to change."""


def compose_raw(name: str, overrides: list[str]) -> DictConfig:
    """Hydra's composition of primary config ``name`` (schemas registered first), unchecked."""
    from drive.schemas import register

    register()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def group_choices() -> dict[str, list[str]]:
    """``{group: [choices]}``: the YAML files of each config group and the entries registered in
    the ConfigStore under it, but for the schemas (``*_schema``), which are no choice."""
    from hydra.core.config_store import ConfigStore

    from drive.schemas import register

    register()
    store = ConfigStore.instance()
    out: dict[str, set[str]] = {}
    for d in sorted(CONF_DIR.iterdir()):
        if d.is_dir() and not d.name.startswith(("_", ".")):
            out[d.name] = {p.stem for p in d.glob("*.yaml")}
    for group in store.list(""):
        if group.endswith(".yaml") or group == "hydra":
            continue  # a primary config, or Hydra's own settings
        names = {n.removesuffix(".yaml") for n in store.list(group) if n.endswith(".yaml")}
        out.setdefault(group, set()).update(names)
    choices = {
        g: sorted(c for c in names if not c.endswith(SCHEMA_SUFFIX)) for g, names in sorted(out.items())
    }
    return {g: c for g, c in choices.items() if c}


def load(name: str, overrides: list[str]) -> DictConfig:
    """The checked config of primary config ``name`` with ``overrides``; :class:`ConfigProblem`."""
    parsed = _parse(overrides)
    groups = group_choices()
    group_args = []
    for arg, o in parsed:
        if o.is_delete():
            raise ConfigProblem(f"{arg}: removing a key is not supported; set its value instead")
        if o.key_or_group in groups:
            choice = o.value()
            if not isinstance(choice, str) or choice not in groups[o.key_or_group]:
                raise ConfigProblem(
                    f"{arg}: {o.key_or_group} must be one of {', '.join(groups[o.key_or_group])}"
                )
            group_args.append(arg)
    base = _compose(name, group_args)
    for arg, o in parsed:
        if o.key_or_group not in groups and not o.key_or_group.startswith("hydra."):
            _check_key(base, arg, o.key_or_group)
    cfg = _compose(name, overrides)
    try:
        OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
        problems = list(rule_problems(cfg))
    except OmegaConfBaseException as exc:
        raise ConfigProblem(_one_line(exc)) from exc
    if problems:
        raise ConfigProblem("; ".join(problems))
    align_sensors(cfg, [o.key_or_group for _, o in parsed])
    return cfg


def checkpoint_bev_history(path: str) -> int | None:
    """The BEV history frames (``sim.bev.history``) a world-model checkpoint was trained with,
    from its BEV channel count; ``None`` when the file is no world-model checkpoint."""
    import torch

    from sim_bridge.sensors.layout import DYNAMIC_CHANNELS, BevChannel

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # unreadable here: the agent's own loading says what is wrong
        return None
    shape = (ckpt.get("shapes") or {}).get("bev_shape") if isinstance(ckpt, dict) else None
    if not shape:
        return None
    extra = int(shape[0]) - len(BevChannel)
    return extra // len(DYNAMIC_CHANNELS) if extra >= 0 and extra % len(DYNAMIC_CHANNELS) == 0 else None


def align_sensors(cfg: DictConfig, given: list[str]) -> None:
    """Give the simulator the BEV history the agent's (or driver's, or ``drive wm-eval``'s)
    checkpoint was trained with, so that ``agent.checkpoint=…`` is all a user names; a
    ``sim.bev.history`` given on the command line that differs from the checkpoint's is a
    :class:`ConfigProblem`."""
    if "sim" not in cfg:
        return
    for role in ("agent", "driver", ""):
        node = cfg.get(role) if role else cfg
        path = node.get("checkpoint") if isinstance(node, DictConfig) else None
        if not isinstance(path, str) or not path or not Path(path).is_file():
            continue
        key = f"{role}.checkpoint" if role else "checkpoint"
        history = checkpoint_bev_history(path)
        bev = OmegaConf.select(cfg, "sim.bev")
        if history is None or bev is None or int(bev.history) == history:
            continue
        if "sim.bev.history" in given:
            raise ConfigProblem(
                f"sim.bev.history={int(bev.history)}, but {key}={path} was trained with "
                f"sim.bev.history={history}: leave it out (it follows the checkpoint) or give {history}"
            )
        bev.history = history


def _parse(overrides: list[str]) -> list[tuple[str, Override]]:
    """Each override with Hydra's parse of it; one that Hydra's grammar refuses is a problem."""
    parser = OverridesParser.create()
    out = []
    for arg in overrides:
        try:
            out += [(arg, o) for o in parser.parse_overrides([arg])]
        except HydraException:
            hint = " (options start with --; see --help)" if arg.startswith("-") else ""
            raise ConfigProblem(f"cannot read {arg!r}: write key=value{hint}") from None
    return out


def _compose(name: str, overrides: list[str]) -> DictConfig:
    try:
        return compose_raw(name, overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigProblem(_one_line(exc)) from exc


def _one_line(exc: BaseException) -> str:
    """The first line of a Hydra/OmegaConf error, with the key it concerns."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else exc
    text = str(getattr(cause, "msg", None) or cause).strip().splitlines()
    first = text[0] if text else type(cause).__name__
    key = getattr(cause, "full_key", None)
    return f"{key}: {first}" if key else first


# ------------------------------------------------------------------------------ unknown keys


def _structured(node: DictConfig) -> type | None:
    cls = OmegaConf.get_type(node)
    return cls if dataclasses.is_dataclass(cls) and isinstance(cls, type) else None


def _check_key(base: DictConfig, arg: str, key: str) -> None:
    """Refuse override ``arg`` of ``key`` when ``base``'s schema does not have the key."""
    node: Any = base
    for depth, part in enumerate(key.split(".")):
        if isinstance(node, ListConfig) or (isinstance(node, DictConfig) and _structured(node) is None):
            return  # free-form content (a suite's entries, a list): not the schema's to check
        if not isinstance(node, DictConfig) or part not in set(node.keys()):  # `in node`: False if missing
            where = ".".join(key.split(".")[:depth]) or "the config"
            hint = nearest(base, key)
            raise ConfigProblem(
                f"{arg}: {where} has no key {part!r}"
                + (f"; did you mean {' or '.join(hint)}?" if hint else "")
                + " (see --help for every key)"
            )
        node = node._get_node(part)


def _paths(node: DictConfig, prefix: str = "") -> Iterator[str]:
    """Dotted paths of the leaf keys of a structured config."""
    for key in list(node.keys()):
        path = f"{prefix}{key!s}"
        child = node._get_node(str(key))
        if isinstance(child, DictConfig) and _structured(child) is not None:
            yield from _paths(child, f"{path}.")
        else:
            yield path


def nearest(cfg: DictConfig, key: str, n: int = 3) -> list[str]:
    """The real keys nearest to ``key``: same last name first (``steps`` → ``optim.steps``)."""
    paths = list(_paths(cfg))
    leaf = key.rsplit(".", 1)[-1]
    same = [p for p in paths if p.rsplit(".", 1)[-1] == leaf]
    close = difflib.get_close_matches(key, paths, n=n, cutoff=0.6)
    by_leaf = {p.rsplit(".", 1)[-1]: p for p in paths}
    close += [by_leaf[m] for m in difflib.get_close_matches(leaf, list(by_leaf), n=n, cutoff=0.75)]
    return list(dict.fromkeys(same + close))[:n]


# ------------------------------------------------------------------------------------ ranges


def rule_problems(cfg: DictConfig, prefix: str = "") -> Iterator[str]:
    """One line per value of ``cfg`` outside what its schema field allows."""
    cls = _structured(cfg)
    if cls is None:
        return
    docs = attribute_docs(cls)
    for fd in dataclasses.fields(cls):
        if fd.name not in cfg or OmegaConf.is_missing(cfg, fd.name):
            continue
        child = cfg._get_node(fd.name)
        if isinstance(child, DictConfig):
            yield from rule_problems(child, f"{prefix}{fd.name}.")
            continue
        if not fd.metadata:
            continue
        value = cfg[fd.name]
        plain = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
        if broken_rule(plain, fd.metadata):
            doc = docs.get(fd.name, "")
            yield (
                f"{prefix}{fd.name}={plain}: must be {describe_rules(fd.metadata)}"
                + (f" ({doc.rstrip('.')})" if doc else "")
            )
