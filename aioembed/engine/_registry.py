"""Finding a backend by name, and the models it serves.

A backend is registered at runtime with :func:`register_backend` or, so that it
also exists in the server's worker processes, advertised as an entry point::

    [project.entry-points."aioembed.backends"]
    my-clip = "my_package.backend:ClipBackend"   # a class or zero-argument factory

and selected by name (``backend="my-clip"`` on every engine function, or the
server's configuration). The built-in ``"features"`` (weights-free,
:mod:`aioembed.engine._features`) is known here by its import path and loaded
on first use, so nothing is registered twice and this module stays light: it
imports neither NumPy nor PyAV until a backend is built.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._catalogue import Catalogue, Model, catalogue_of

if TYPE_CHECKING:
    from ._backend import Backend

__all__ = [
    "DEFAULT_BACKEND",
    "ENTRY_POINT_GROUP",
    "available_backends",
    "backend_catalogue",
    "get_backend",
    "get_model",
    "register_backend",
]

ENTRY_POINT_GROUP = "aioembed.backends"
DEFAULT_BACKEND = "features"
#: Backends shipped with aioembed: name -> "module:attribute".
_BUILTIN = {DEFAULT_BACKEND: "aioembed.engine._features:FeatureBackend"}

BackendFactory = Callable[[], "Backend"]

_lock = threading.Lock()
_factories: dict[str, BackendFactory] = {}
_instances: dict[str, Backend] = {}


def register_backend(name: str, factory: BackendFactory, *, replace: bool = False) -> None:
    """Make ``factory()`` available as backend ``name`` in this process.

    Raises :class:`ValueError` if ``name`` is taken and ``replace`` is false.
    (Worker processes do not inherit runtime registrations: ship an entry point.)
    """
    with _lock:
        if name in _factories and not replace:
            raise ValueError(f"backend {name!r} is already registered")
        _factories[name] = factory
        _instances.pop(name, None)


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_backends() -> list[str]:
    """Names of built-in, registered and entry-point backends, sorted."""
    with _lock:
        names = set(_factories)
    return sorted(names | set(_BUILTIN) | set(_entry_points()))


def _factory(name: str) -> Any:
    """The factory of backend ``name``: runtime registrations, then built-ins, then
    entry points. :class:`KeyError` for an unknown name."""
    with _lock:
        factory = _factories.get(name)
    if factory is not None:
        return factory
    if name in _BUILTIN:
        module, _, attr = _BUILTIN[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    ep = _entry_points().get(name)
    if ep is None:
        raise KeyError(f"unknown backend {name!r}; available: {', '.join(available_backends())}")
    return ep.load()


def get_backend(name: str | None = None) -> Backend:
    """The (cached) backend called ``name`` (default :data:`DEFAULT_BACKEND`).

    Raises :class:`KeyError` for an unknown name and :class:`TypeError` if the
    factory's result does not implement :class:`~aioembed.engine.Backend`.
    """
    from ._backend import Backend

    name = name or DEFAULT_BACKEND
    with _lock:
        cached = _instances.get(name)
    if cached is not None:
        return cached
    backend = _factory(name)()
    if not isinstance(backend, Backend):
        raise TypeError(f"backend {name!r} does not implement aioembed.engine.Backend")
    with _lock:
        return _instances.setdefault(name, backend)


def backend_catalogue(name: str | None = None) -> Catalogue:
    """The models backend ``name`` serves, read from its factory without building it."""
    return catalogue_of(_factory(name or DEFAULT_BACKEND))


def get_model(name: str, backend: str | None = None) -> Model:
    """Model ``name`` of backend ``backend`` (default: the default backend's catalogue);
    raises :class:`KeyError` naming the known ones."""
    return backend_catalogue(backend).get(name)
