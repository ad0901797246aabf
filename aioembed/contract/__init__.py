"""The wire contract, per API version, shared by the client and the server.

Each version is a subpackage (``contract.v1``; a new version is a new one) holding:

* its URL prefix and operations (method, path, form, query, response model),
  the one table the server mounts its handlers from and the OpenAPI document is
  generated from;
* its form field specs, with the encoder the client sends with and the decoder
  the server reads with (one set of names, one validator);
* its response models and a cattrs converter factory, ``make_converter()``, in
  the style of :mod:`cattrs.preconf`: the client parses with it and the server
  renders with it, so both ends agree on every body by construction.

Nothing here imports aiohttp, the server or the engine: the SDK core (aiohttp,
attrs, cattrs, anyio) is enough to import any version.
"""

from __future__ import annotations

__all__: list[str] = []
