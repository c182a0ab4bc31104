"""Input limits: how big, how long and how deep an input may be before it is refused.

Every reader checks its input against an :class:`InputLimits` as early as it can, so that a hostile
file (one 50 MB line, a billion rows, JSON nested ten thousand deep, a small PNG that decodes to
gigabytes) is refused with an ``InputError`` naming the limit, before it costs minutes or memory.
A ward's defaults can be raised in its ``ward.json`` (``"input_limits": {...}``); one import can
raise them with ``contribute --limit NAME=SIZE`` or ``limits=`` in Python.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from dataward.domain.errors import InputError
from dataward.domain.key_shape import written_key

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": KiB,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": MiB,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": GiB,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")

_WHAT = {
    "max_file_bytes": "the size of one input file (or the total of an image folder)",
    "max_record_bytes": "the size of one record (a CSV record, a JSON Lines line, a Parquet row, one image file)",
    "max_rows": "the number of records in one input",
    "max_depth": "how deeply JSON values (and Parquet types) may nest",
    "max_image_pixels": "the pixel count (width x height) of one image, read from its header before decoding",
    "max_batch_pixels": "the pixel count of all the images of a contribution together, which the gate decodes",
    "max_decompressed_bytes": "the decompressed size of a compressed input (the column data of a Parquet file)",
}


MAX_TEXT_CHARS = 4000
"""The longest free text a caller may write into the signed ledger, in characters: a reason, a
description, a commit message, a source URI or licence. The ledger keeps every event for good and
every reader and verifier reads it, so a megabyte ``reason`` would cost everyone, forever."""


def check_free_text(**fields: str | None) -> None:
    """Refuse (``InputError``, naming the field and the limit) any of ``fields`` longer than
    :data:`MAX_TEXT_CHARS`, or holding a whole API key or its secret, also split by white space (see
    ``key_shape.written_key``; the ledger keeps free text for good and shows it to every reader of the
    ward); called before anything is read or stored."""
    _check_written(MAX_TEXT_CHARS, fields)


def check_free_document(**fields: str | None) -> None:
    """``check_free_text`` for documents a caller writes whole (a dataset's policy in YAML): up to
    :data:`MAX_JSON_CHARS` characters, and no API key anywhere in the text, comments included."""
    _check_written(MAX_JSON_CHARS, fields)


def _check_written(limit: int, fields: dict[str, str | None]) -> None:
    for name, value in fields.items():
        if not isinstance(value, str):
            continue
        if len(value) > limit:
            raise InputError(
                f"{name} is {len(value):,} characters long; the limit is {limit:,} characters",
                hint=f"shorten the {name}: the signed ledger keeps it for good (see docs/input-limits.md)",
            )
        _refuse_key(name, value)


MAX_JSON_CHARS = 64_000
"""The largest structured value a caller may write into the signed ledger, in characters of its compact
JSON: a training run's or a transformation's parameters, metrics or code identity. A training config
fits many times over; a dataset or a tensor pasted into ``params`` does not, and the ledger would keep
it for good and make every reader and verifier read it."""


MAX_JSON_DEPTH = 64
"""How deeply a structured value a caller writes into the signed ledger may nest (a mapping or a list
is one level): a training run's or a transformation's parameters, metrics or code identity, a section
of a dataset's policy. A configuration needs a handful; the encoders that hash and sign an event
recurse once per level, and a value nested hundreds deep would fail them as a server error."""


def nesting_depth_over(value: Any, limit: int) -> bool:
    """True when ``value`` (mappings, lists and tuples of plain values) nests deeper than ``limit``
    levels. Walked with a stack of its own, never by recursion, so that any depth is measured."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, Mapping | list | tuple))
    return False


def check_json_depth(name: str, value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse (``InputError``, naming ``name`` and the limit) a structured value nested deeper than
    ``limit`` levels (:data:`MAX_JSON_DEPTH`): what every free-form value the ledger signs is held to,
    before anything recursive (an encoder, a hash) reads it."""
    if nesting_depth_over(value, limit):
        raise InputError(
            f"{name} is nested more than {limit} levels deep (mappings and lists); the limit is {limit} levels",
            hint=f"flatten the {name}: the signed ledger keeps it for good (see docs/input-limits.md)",
            max_depth=limit,
        )


def text_keyed(value: Any, name: str) -> dict[str, Any]:
    """``value``, a mapping (None: an empty one), as a dict; ``InputError`` naming ``name`` when it is no
    mapping or a mapping in it, at any depth, has a key that is not text. JSON writes ``{1: 2}`` as
    ``{"1": 2}``: the record would say something other than what was given (and a tuple key reached the
    encoder as a raw ``TypeError``)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(
            f"{name} must be a mapping of names to values, not a {type(value).__name__}",
            hint="e.g. {'C': 1.0, 'epochs': 3}",
        )
    check_json_depth(name, value)
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InputError(
                        f"{name} may have only text keys, not {key!r} ({type(key).__name__})",
                        hint=f"write the key as text, e.g. {str(key)!r}, if that is what is meant",
                    )
                stack.append(child)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return dict(value)


def signable(value: Any, name: str, *, verb: str = "must be") -> Any:
    """``value`` when the ledger can sign it: plain JSON in RFC 8785's domain (``hashing.jcs``: finite
    numbers, integers within +/-(2**53 - 1)), at most :data:`MAX_JSON_DEPTH` levels deep, which is how
    every event is hashed; else ``InputError`` naming ``name`` ("``name`` ``verb`` plain JSON values...").
    Plain JSON alone is not enough: a larger integer reached the event's seal and failed there, as a
    server error, and so did nesting deep enough to exhaust the encoder's recursion."""
    from dataward.domain.hashing import jcs

    check_json_depth(name, value)
    try:
        jcs(value)
    except RecursionError:  # measured above; kept so that no nesting ever reaches the caller as a crash
        raise InputError(f"{name} is nested too deeply for the ledger to sign") from None
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{name} {verb} plain JSON values the ledger can sign (finite numbers, integers within "
            f"+/-(2**53 - 1)): {exc}"
        ) from None
    return value


def check_free_json(**fields: Any) -> None:
    """Refuse (``InputError``, naming the field) any of ``fields`` (plain JSON values: mappings, lists,
    text, numbers) nested deeper than :data:`MAX_JSON_DEPTH` levels, whose compact JSON is longer than
    :data:`MAX_JSON_CHARS`, or with a key or a text value that holds a whole API key
    (``check_free_text``'s rule, applied to every text inside it). Values that are not plain JSON are
    left to ``signable``."""
    for name, value in fields.items():
        if value is None:
            continue
        check_json_depth(name, value)
        try:
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str))
        except (TypeError, ValueError, RecursionError):
            continue  # not plain JSON: refused by the caller's own check, with its own message
        if size > MAX_JSON_CHARS:
            raise InputError(
                f"{name} is {size:,} characters of JSON; the limit is {MAX_JSON_CHARS:,}",
                hint=f"keep large artefacts in files and name them (a path or a digest) in the {name}: the "
                "signed ledger keeps it for good (see docs/input-limits.md)",
            )
        for text in _texts_in(value):
            _refuse_key(name, text)


def _texts_in(value: Any) -> list[str]:
    """Every text in a JSON value: its mappings' keys and its text values, at any depth."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, Mapping):
            found.extend(str(k) for k in item)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def _refuse_key(name: str, value: str) -> None:
    found = written_key(value)
    if found is not None:
        # The secret is not repeated in the refusal: only the key's id, when it was written with it.
        which = f" ({found}_...)" if found else "'s secret"
        raise InputError(
            f"{name} holds an API key{which}; the signed ledger would keep it for good",
            hint="name a key by its id alone (dw_ID); rotate a key whose secret was written anywhere",
        )


@dataclass(frozen=True)
class InputLimits:
    """The limits an input must stay within; every field is a positive integer.

    The defaults are far above ordinary training data and far below what exhausts a machine:
    a 50 MB line is refused, a 4 MB base64 photo is not.
    """

    max_file_bytes: int = 4 * GiB
    max_record_bytes: int = 16 * MiB
    max_rows: int = 10_000_000
    max_depth: int = 32
    max_image_pixels: int = 89_478_485
    """Pillow's own default (``Image.MAX_IMAGE_PIXELS``): a 9,459 x 9,459 image."""
    max_batch_pixels: int = 10_000_000_000
    """All the images of one contribution, together, as the gate decodes them: about 199,000 images
    of 224 x 224, or 111 of ``max_image_pixels`` (read from the headers, checked by ``scan``)."""
    max_decompressed_bytes: int = 8 * GiB

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(
                    f"the input limit {f.name} must be a positive whole number, not {value!r}",
                    hint=limit_hint(f.name),
                )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The limit names, as written in ``ward.json`` and ``--limit NAME=SIZE``."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def coerce(cls, value: InputLimits | Mapping[str, Any] | None, base: InputLimits | None = None) -> InputLimits:
        """``value`` as limits: an ``InputLimits`` as it is; a mapping of names to sizes (``16MiB``,
        ``2GB``, ``1000000``) laid over ``base`` (default: the defaults); ``None`` gives ``base``."""
        start = base or cls()
        if value is None:
            return start
        if isinstance(value, InputLimits):
            return value
        if not isinstance(value, Mapping):
            raise InputError(f"input limits must be a mapping of limit names to sizes, not {type(value).__name__}")
        unknown = sorted(str(k) for k in value if k not in cls.names())
        if unknown:
            raise InputError(
                f"unknown input limit {unknown[0]!r}",
                hint=f"the limits are: {', '.join(cls.names())}",
            )
        return replace(start, **{str(k): parse_size(str(k), v) for k, v in value.items()})

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


DEFAULT_LIMITS = InputLimits()


def parse_size(name: str, value: Any) -> int:
    """A size or count: an integer, or text such as ``16MiB``, ``2GB``, ``1.5G``, ``10000000``."""
    if isinstance(value, bool):
        raise InputError(f"the input limit {name} must be a number or a size such as 64MiB, not {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value)) if isinstance(value, str | float) else None
    if match is None or match.group(2).lower() not in _UNITS:
        raise InputError(
            f"the input limit {name} must be a number or a size such as 64MiB, not {value!r}",
            hint="units: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)",
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(value: int) -> str:
    """``16 MiB`` for 16777216, ``1,234 bytes`` otherwise."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}"
    return f"{value:,} bytes"


def limit_hint(name: str) -> str:
    """How to raise limit ``name``: for one import, and for the whole ward."""
    return (
        f"{name} limits {_WHAT.get(name, name)}; raise it for one import with "
        f"`dataward contribute --limit {name}=VALUE` (limits={{'{name}': VALUE}} in Python), "
        f'or for the ward with "input_limits": {{"{name}": VALUE}} in its ward.json'
    )


def limit_problem(name: str, limit: int, actual: int | None = None, *, what: str, bytes_: bool = True) -> str:
    """``the record is 52,428,812 bytes, over the limit of 16 MiB (max_record_bytes)``."""
    shown = format_size(limit) if bytes_ else f"{limit:,}"
    if actual is None:
        return f"{what} is over the limit of {shown} ({name})"
    size = f"{actual:,} bytes" if bytes_ else f"{actual:,}"
    return f"{what} is {size}, over the limit of {shown} ({name})"


def limit_error(name: str, problem: str, **details: Any) -> InputError:
    """An ``InputError`` for an exceeded limit, whose hint says how to raise it."""
    return InputError(problem, hint=limit_hint(name), limit=name, **details)


__all__ = [
    "DEFAULT_LIMITS",
    "GiB",
    "InputLimits",
    "KiB",
    "MiB",
    "format_size",
    "limit_error",
    "limit_hint",
    "limit_problem",
    "parse_size",
]


MAX_DAYS = 36_500
"""The longest span, in days, any duration argument may name (a hundred years): beyond it date
arithmetic overflows, and no key or review window needs more."""


def within_range(value: float, name: str, low: float, high: float) -> float:
    """``value`` when ``low <= value <= high``; else an ``InputError`` naming the argument and its range."""
    if not low <= value <= high:
        raise InputError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return value
