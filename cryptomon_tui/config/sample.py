"""Render ``sample_config.yaml`` from the config models, so it documents every option with its real default.

A test compares the shipped file with this rendering, so the sample can never drift from the
code. Regenerate with ``python -m cryptomon_tui.config.sample > sample_config.yaml``.
"""

from __future__ import annotations

import json
import sys
import types
import typing

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from cryptomon_tui.config.root import Config
from cryptomon_tui.kernel.units import format_duration

HEADER = """\
# cryptomon configuration: every option with its default.
#
# With no config file at all, cryptomon watches the public endpoints of Binance (spot and
# USD-M futures), Bybit, OKX and Deribit; no keys are needed. Copy this file to the path that
# `cryptomon config init` prints (or pass --config), delete what you do not change, and check
# it with `cryptomon config check`.
#
# Durations: 500ms, 20s, 5m, 1h, 7d or a plain number of seconds.
# Secrets: write ${ENV_VAR} (or ${ENV_VAR:-default}); the file is created mode 600.
"""

# Example entries for mappings whose default is empty or not self-explanatory.
EXAMPLES: dict[str, str] = {
    "exchanges": """\
  # The five built-in exchanges below are watched by default. A section named binance,
  # binance_futures, bybit, okx or deribit needs no `kind:`; any other name needs `kind:`
  # (or `url:` for a generic HTTP target). Remove a section or set `enabled: false` to skip one.
  # Example of a generic target (another exchange, or your bot's health endpoint):
  # mybot:
  #   kind: generic
  #   url: http://127.0.0.1:8080/api/v1/health
  #   expect_status: [200]
  #   condition: "$.status == 'ok'"     # optional JSON-path condition
  #   latency_limit: 500ms              # slower than this counts as a failure
  #   interval: 10s
  # A non-exchange canary tells "our network is down" from "the exchanges are down":
  # canary:
  #   kind: generic
  #   url: https://1.1.1.1/
  #   canary: true
""",
}


def _type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        return " | ".join(_type_name(a) for a in args) + (" | null" if nullable else "")
    if origin is typing.Literal:
        return " | ".join(str(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (list, tuple, set):
        return "list"
    if origin is dict:
        return "mapping"
    name = getattr(annotation, "__name__", None)
    return name if isinstance(name, str) else str(annotation)


def _is_duration(info: FieldInfo) -> bool:
    return any(getattr(m, "func", None) is not None and "duration" in getattr(m.func, "__name__", "")
               for m in info.metadata)


def _scalar(value: object, duration: bool) -> str:
    if value is None:
        return "null"
    if isinstance(value, SecretStr):
        return '"${SECRET}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if duration and isinstance(value, int | float):
        return format_duration(float(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, default=str)


def _default(info: FieldInfo) -> object:
    """The field's default (its factory called: config factories take no data), PydanticUndefined if required."""
    if info.default is not PydanticUndefined:
        return info.default
    if info.default_factory is not None:
        return info.get_default(call_default_factory=True, validated_data={})
    return PydanticUndefined


def _model_of(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def render_model(model: type[BaseModel], value: BaseModel | None, indent: int, path: str, out: list[str]) -> None:
    pad = "  " * indent
    for attr, info in model.model_fields.items():
        name = info.alias or attr
        key_path = f"{path}.{name}" if path else name
        default = getattr(value, attr) if value is not None else _default(info)
        doc = (info.description or "").strip()
        sub = _model_of(info.annotation)
        if doc:
            out.append(f"{pad}# {doc}")
        if sub is not None and isinstance(default, BaseModel):
            out.append(f"{pad}{name}:")
            render_model(sub, default, indent + 1, key_path, out)
            continue
        if sub is not None and (default is None or default is PydanticUndefined):
            out.append(f"{pad}# {name}:  ({_type_name(info.annotation)}; off by default)")
            lines: list[str] = []
            render_model(sub, None, indent + 1, key_path, lines)
            out.extend(_comment_out(pad, line) for line in lines)
            continue
        if isinstance(default, dict):
            if key_path in EXAMPLES:
                out.append(f"{pad}{name}:")
                out.append(EXAMPLES[key_path].rstrip("\n"))
                for k, v in default.items():
                    if isinstance(v, BaseModel):
                        out.append(f"{pad}  {k}:")
                        render_model(type(v), v, indent + 2, f"{key_path}.{k}", out)
                    else:
                        out.append(f"{pad}  {k}: {_scalar(v, False)}")
                continue
            if not default:
                out.append(f"{pad}{name}: {{}}  # mapping of {_value_hint(info.annotation)}")
                item = _dict_value_model(info.annotation)
                if item is not None:
                    lines = []
                    render_model(item, None, indent + 2, f"{key_path}.NAME", lines)
                    out.append(f"{pad}# example entry:")
                    out.append(f"{pad}#   NAME:")
                    out.extend(_comment_out(pad, line) for line in lines)
                continue
            out.append(f"{pad}{name}:")
            for k, v in default.items():
                if isinstance(v, BaseModel):
                    out.append(f"{pad}  {k}:")
                    render_model(type(v), v, indent + 2, f"{key_path}.{k}", out)
                else:
                    out.append(f"{pad}  {json.dumps(str(k))}: {_scalar(v, False)}")
            continue
        if isinstance(default, list | tuple):
            item_model = _list_item_model(info.annotation)
            if not default and item_model is not None:
                out.append(f"{pad}{name}: []")
                lines = []
                render_model(item_model, None, indent + 2, key_path, lines)
                out.append(f"{pad}# example entry:")
                if lines:
                    first, *rest = (_comment_out(pad, line) for line in lines)
                    out.append(f"{pad}#  - {first[len(pad) + 1:].strip()}")
                    out.extend(rest)
                continue
            if default and all(isinstance(v, BaseModel) for v in default):
                out.append(f"{pad}{name}:")
                for v in default:
                    lines = []
                    render_model(type(v), v, indent + 2, key_path, lines)
                    first, *rest = lines or [f"{pad}    {{}}"]
                    out.append(f"{pad}  - {first.strip()}")
                    out.extend(rest)
                continue
            rendered = ", ".join(_scalar(v, False) for v in default)
            out.append(f"{pad}{name}: [{rendered}]")
            continue
        if default is PydanticUndefined:
            out.append(f"{pad}# {name}: ({_type_name(info.annotation)}, required)")
            continue
        if default is None:
            out.append(f"{pad}{name}: null  # {_type_name(info.annotation)}")
            continue
        out.append(f"{pad}{name}: {_scalar(default, _is_duration(info))}")


def _comment_out(pad: str, line: str) -> str:
    body = line[len(pad):] if line.startswith(pad) else line
    stripped = body.lstrip()
    if stripped.startswith("# ") and ": (" in stripped:  # "# key: (type, required)" -> "key: (type, required)"
        body = body[: len(body) - len(stripped)] + stripped[2:]
    return f"{pad}#{body}"


def _list_item_model(annotation: object) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) in (list, tuple):
            args = typing.get_args(candidate)
            if args:
                return _model_of(args[0])
    return None


def _dict_value_model(annotation: object) -> type[BaseModel] | None:
    args = typing.get_args(annotation)
    if len(args) == 2:
        return _model_of(args[1])
    return None


def _value_hint(annotation: object) -> str:
    args = typing.get_args(annotation)
    return f"name -> {_type_name(args[1])}" if len(args) == 2 else "entries"


def render_sample() -> str:
    out: list[str] = [HEADER.rstrip("\n"), ""]
    config = Config()
    for name in Config.model_fields:
        section = getattr(config, name)
        info = Config.model_fields[name]
        if info.description:
            out.append(f"# {info.description}")
        if isinstance(section, BaseModel):
            out.append(f"{name}:")
            render_model(type(section), section, 1, name, out)
        else:
            out.append(f"{name}:")
            out.append(EXAMPLES.get(name, "").rstrip("\n"))
            for i, (k, v) in enumerate(section.items()):
                out.append(f"  {k}:")
                if i == 0:
                    out.append(f"    # every option an exchange section takes, with its default (see {k} below)")
                    render_model(type(v), v, 2, f"{name}.{k}", out)
                else:
                    out.append(f"    kind: {_scalar(v.kind, False)}")
                    out.append(f"    enabled: {_scalar(v.enabled, False)}")
                    out.append(f"    interval: {format_duration(v.interval)}")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render_sample())
