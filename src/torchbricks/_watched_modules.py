"""`WatchedModules`: an `nn.Module`'s `_modules` dict that hands every change to its owner.

Model-surgery code writes a module's children straight into `parent._modules` (torch.ao.quantization's convert,
fusion and "replace module" helpers), past `__setattr__`, `add_module` and `__setitem__`. A brick and a collection
derive cached plans from their children, so their `_modules` is a `WatchedModules`: every write reaches
`__setitem__` or `__delitem__`, which a subclass turns into the owner's own change (a brick invalidates the plans of
the collections holding it; a collection validates and invalidates as `collection[key] = brick` does). Nothing here
runs on a call: only changes go through it.
"""

from __future__ import annotations

import weakref
from typing import Any, Generic, TypeVar

__all__ = ["WatchedModules"]

OwnerT = TypeVar("OwnerT")


class WatchedModules(dict[str, Any], Generic[OwnerT]):
    """A dict whose every change goes through `__setitem__` and `__delitem__`, which subclasses override to tell
    their owner (held weakly, so the dict keeps no module alive).

    dict's own `update`, `setdefault`, `pop`, `popitem`, `clear` and `|=` write past `__setitem__` and
    `__delitem__`; here they are spelled with them. A copy or a pickle of the dict is a plain dict: the owner's
    `__getstate__`/`__setstate__` (or `__copy__`) watch the copy's dict for the copy.
    """

    __slots__ = ("_owner",)

    def __init__(self, owner: OwnerT, modules: dict[str, Any]) -> None:
        super().__init__(modules)
        self._owner = weakref.ref(owner)

    def owner(self) -> OwnerT | None:
        """The module whose `_modules` this is (None once it is gone: the dict then acts as a plain dict)."""
        return self._owner()

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def pop(self, key: str, *default: Any) -> Any:
        if key not in self:
            if default:
                return default[0]
            raise KeyError(key)
        value = dict.__getitem__(self, key)
        del self[key]
        return value

    def popitem(self) -> tuple[str, Any]:
        if not self:
            raise KeyError("popitem(): dictionary is empty")
        key = next(reversed(self))
        value = dict.__getitem__(self, key)
        del self[key]
        return key, value

    def clear(self) -> None:
        for key in list(self):
            del self[key]

    def __ior__(self, other: Any) -> WatchedModules[OwnerT]:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))
