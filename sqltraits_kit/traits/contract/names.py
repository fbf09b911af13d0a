"""The name rules: no trait that changes who the profile is, reserved names warned about, names
distinct and lower snake_case as Segment keys them."""

from __future__ import annotations

from sqltraits_kit.traits.contract.report import (
    GROUP_RESERVED_TRAITS,
    IDENTITY_TRAITS,
    USER_RESERVED_TRAITS,
    RuleResult,
    result,
)
from sqltraits_kit.traits.traitset import snake_case

__all__ = ["name_rules"]


def name_rules(
    traits: list[str], id_column: str | None, kind: str, allowed: set[str]
) -> dict[str, RuleResult]:
    identity = {snake_case(n).replace("_", "") for n in IDENTITY_TRAITS[kind]}
    reserved_list = GROUP_RESERVED_TRAITS if kind == "account" else USER_RESERVED_TRAITS
    spec = "group" if kind == "account" else "identify"
    reserved = {snake_case(n) for n in reserved_list}
    identity_hits, reserved_hits = {}, {}
    for name in traits:
        snake = snake_case(name)
        if name in allowed or snake in allowed:
            continue
        if snake.replace("_", "") in identity:
            identity_hits[name] = 1
        elif snake in reserved:
            reserved_hits[name] = 1
    out: dict[str, RuleResult] = {}
    out["identity_trait_names"] = result(
        "identity_trait_names",
        not identity_hits,
        "no trait changes the profile's identity"
        if not identity_hits
        else f"{', '.join(identity_hits)}: these trait names change who the profile is "
        f"({'email is promoted to the email identifier; ' if kind == 'user' else ''}"
        "id-like traits overwrite identifiers); rename them, or pass allow_reserved "
        "if this is deliberate",
        count=len(identity_hits),
        columns=identity_hits,
    )
    out["reserved_trait_names"] = result(
        "reserved_trait_names",
        not reserved_hits,
        "no reserved trait names"
        if not reserved_hits
        else f"{', '.join(reserved_hits)}: reserved by Segment's {spec} spec, destinations "
        "give them a fixed meaning; rename them unless that is the intent",
        count=len(reserved_hits),
        columns=reserved_hits,
    )
    groups: dict[str, list[str]] = {}
    for name in ([id_column] if id_column else []) + traits:
        groups.setdefault(snake_case(name), []).append(name)
    collisions = {k: v for k, v in groups.items() if len(v) > 1}
    out["trait_name_collisions"] = result(
        "trait_name_collisions",
        not collisions,
        "trait names are distinct after snake_casing"
        if not collisions
        else "; ".join(f"{' and '.join(v)} all become {k!r}" for k, v in collisions.items())
        + " (Segment keys traits in snake_case): rename all but one",
        count=len(collisions),
        columns={name: len(v) for v in collisions.values() for name in v},
    )
    not_snake = {n: 1 for n in traits if snake_case(n) != n}
    out["snake_case_names"] = result(
        "snake_case_names",
        not not_snake,
        "every trait name is lower snake_case"
        if not not_snake
        else ", ".join(f"{n} -> {snake_case(n) or '?'}" for n in not_snake)
        + ": Segment keys computed traits in snake_case; a trait set's [traits] can rename them",
        count=len(not_snake),
        columns=not_snake,
    )
    return out
