"""torch's parameter groups over a pytree: selectors, overrides, one group per leaf.

A group is ``{"params": SELECTOR, <hyperparameter>: value, ...}``. SELECTOR
picks leaves by their path, the keys from the root joined with ``"/"``
(dict keys, attribute names and sequence indices: ``"encoder/layers/0/bias"``):

* a string: a regular expression, ``re.search``-ed in the path;
* a list or tuple of strings: exactly those paths;
* a callable ``(path, leaf) -> bool``.

Every other key overrides the optimizer's argument of that name for the
group's leaves (torch's meaning: per-group overrides of the constructor's
defaults); ``"name"`` is kept as a label. A leaf no group selects takes the
constructor's values, in a last group of its own.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import jax

from jsgd._common import tree as _tree
from jsgd._common.tree import path_string

Selector = str | Sequence[str] | Callable[[str, Any], bool]


@dataclasses.dataclass(frozen=True)
class Group:
    """One parameter group: its selector and its full set of hyperparameters.

    Attributes:
      index: its position in ``param_groups`` (the defaults' group: after
        the last).
      selector: what picks its leaves (``None`` for the defaults' group).
      values: every hyperparameter of the optimizer, with the overrides.
      name: the group's ``"name"``, if it has one.
    """

    index: int
    selector: Selector | None
    values: Mapping[str, Any]
    name: str | None = None

    def where(self) -> str:
        """How error messages name it."""
        if self.selector is None:
            return "the defaults' group (leaves no param_groups entry selects)"
        return f"param_groups[{self.index}]"


def _compile(index: int, selector: Any) -> Selector:
    where = f"param_groups[{index}]['params']"
    if isinstance(selector, str):
        try:
            re.compile(selector)
        except re.error as error:
            raise ValueError(
                f"{where} is not a valid regular expression ({error}). "
                f"Received: {selector!r}"
            ) from None
        return selector
    if isinstance(selector, (list, tuple)):
        if not all(isinstance(p, str) for p in selector):
            raise TypeError(
                f"{where} must be a regular expression, a list of path strings "
                f"or a callable (path, leaf) -> bool. Received: {selector!r}"
            )
        return tuple(selector)
    if callable(selector):
        return cast(Callable[[str, Any], bool], selector)
    raise TypeError(
        f"{where} must be a regular expression, a list of path strings or a "
        f"callable (path, leaf) -> bool. Received: {selector!r}"
    )


def parse(
    param_groups: Any,
    defaults: Mapping[str, Any],
    validate: Callable[[dict[str, Any], tuple[str, ...]], None],
) -> list[Group]:
    """Checks ``param_groups`` and merges each group's overrides into ``defaults``.

    Args:
      param_groups: ``None`` or a list of dicts, as described above.
      defaults: every hyperparameter the optimizer was built with.
      validate: ``validate(values, names)`` checks the named values (the
        optimizer's checks, in its signature order).

    Returns:
      The explicit groups, in order (the defaults' group is added by
      :func:`assign` when some leaf needs it).

    Raises:
      TypeError, ValueError: naming the group and the key.
    """
    if param_groups is None:
        return []
    if isinstance(param_groups, Mapping) or not isinstance(param_groups, Sequence):
        raise TypeError(
            "`param_groups` must be a list of dicts. Received: "
            f"param_groups={param_groups!r}"
        )
    allowed = ("params", "name", *defaults)
    groups = []
    for index, group in enumerate(param_groups):
        if not isinstance(group, Mapping):
            raise TypeError(
                f"param_groups[{index}] must be a dict. Received: {group!r}"
            )
        if "params" not in group:
            raise ValueError(
                f"param_groups[{index}] has no 'params': a regular expression, a "
                "list of paths or a callable (path, leaf) -> bool selecting its "
                "leaves"
            )
        unknown = [k for k in group if k not in allowed]
        if unknown:
            raise ValueError(
                f"param_groups[{index}] has the unknown key {unknown[0]!r}; a group "
                f"may set {', '.join(allowed)}"
            )
        overrides = {k: v for k, v in group.items() if k not in ("params", "name")}
        values = {**defaults, **overrides}
        try:
            validate(values, tuple(overrides))
        except (TypeError, ValueError) as error:
            raise type(error)(f"param_groups[{index}]: {error}") from None
        name = group.get("name")
        if name is not None and not isinstance(name, str):
            raise TypeError(
                f"param_groups[{index}]['name'] must be a str. Received: {name!r}"
            )
        groups.append(Group(index, _compile(index, group["params"]), values, name))
    return groups


def _selects(group: Group, path: str, leaf: Any) -> bool:
    selector = group.selector
    if isinstance(selector, str):
        return re.search(selector, path) is not None
    if isinstance(selector, tuple):
        return path in selector
    assert callable(selector)
    if leaf is None:  # no parameter (or a frozen one, seen through updates)
        return False
    chosen = selector(path, leaf)
    if not isinstance(chosen, bool):
        raise TypeError(
            f"param_groups[{group.index}]['params'] must return a bool for "
            f"({path!r}, leaf). Received: {chosen!r}"
        )
    return chosen


def _some(paths: list[str], shown: int = 12) -> str:
    listed = ", ".join(repr(p) for p in paths[:shown])
    return listed + (f", ... ({len(paths)} in all)" if len(paths) > shown else "")


def assign(
    tree: Any, groups: list[Group], defaults: Mapping[str, Any]
) -> tuple[Any, list[Group]]:
    """Each leaf's group: a tree of group positions, and the groups in use.

    The groups in use are ``groups`` and, when some leaf no group selects
    exists, the defaults' group after them (in that order: torch's
    ``param_groups`` order for ``state_dict``).

    Raises:
      ValueError: for a leaf two groups select (torch refuses a parameter in
        two groups), or a path a list selector names that is not in the tree.
        A regular expression or callable that selects nothing makes an empty
        group, as torch allows.
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=_tree.is_update_leaf
    )
    paths = [path_string(path) for path, _ in flat]
    positions: list[int] = []
    for path, (_, leaf) in zip(paths, flat, strict=True):
        chosen = [g for g in groups if _selects(g, path, leaf)]
        if len(chosen) > 1:
            raise ValueError(
                f"The parameter {path!r} is selected by {chosen[0].where()} and "
                f"{chosen[1].where()}; torch refuses a parameter in two groups "
                '("some parameters appear in more than one parameter group").'
            )
        positions.append(chosen[0].index if chosen else len(groups))
    for group in groups:
        if isinstance(group.selector, tuple):
            missing = [p for p in group.selector if p not in paths]
            if missing:
                raise ValueError(
                    f"{group.where()}['params'] names {missing}, which are not "
                    f"parameter paths; the paths are {_some(paths)}"
                )
    in_use = list(groups)
    if len(groups) in positions:
        in_use.append(Group(len(groups), None, dict(defaults)))
    return treedef.unflatten(positions), in_use
