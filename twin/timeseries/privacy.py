"""Pseudonymised meter and customer ids (keyed hash, secret kept outside the store).

Meter and customer ids are personal data once they can be linked to a household, so the store never holds them in
clear: it holds ``HMAC-SHA256(secret, kind + id)`` truncated to 20 hex digits (80 bits). Whoever holds the secret can
find a customer's data again (erasure, portability); whoever holds only the store cannot. The store records the
secret's fingerprint (an HMAC of a fixed text), so a wrong secret is refused instead of silently creating new
pseudonyms.

Where the secret comes from, first match: the ``secret`` argument, ``$GRIDTWIN_SECRET``, the file named by
``$GRIDTWIN_SECRET_FILE``, ``~/.config/gridtwin/secret`` (created with mode 0600 on first use).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

if TYPE_CHECKING:
    from twin.timeseries.store import Store

DEFAULT_SECRET_FILE = Path("~/.config/gridtwin/secret")


class SecretMismatchError(ValueError):
    """The secret given does not match the one the store was written with."""


def load_secret(secret: bytes | str | None = None) -> bytes:
    """The pseudonymisation secret (see the module docstring for where it is looked for)."""
    if secret is not None:
        return secret.encode() if isinstance(secret, str) else secret
    if os.environ.get("GRIDTWIN_SECRET"):
        return os.environ["GRIDTWIN_SECRET"].encode()
    path = Path(os.environ.get("GRIDTWIN_SECRET_FILE", DEFAULT_SECRET_FILE)).expanduser()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


class Pseudonymiser:
    """Keyed hashes of ids: ``p.meter("M1") -> "m_3f9a..."``, ``p.customer("C7") -> "c_81b0..."``."""

    def __init__(self, secret: bytes | str | None = None) -> None:
        self._key = load_secret(secret)
        self._known: dict[str, str] = {}  # meter id → pseudonym: ingest sees the same meters batch after batch

    @property
    def fingerprint(self) -> str:
        """A value that identifies the secret without revealing it (stored in the store's attributes)."""
        return hmac.new(self._key, b"gridtwin-fingerprint", hashlib.sha256).hexdigest()[:16]

    def check(self, fingerprint: str | None) -> None:
        """Raise :class:`SecretMismatchError` unless ``fingerprint`` is this secret's."""
        if fingerprint and fingerprint != self.fingerprint:
            raise SecretMismatchError(
                "the store was written with another pseudonymisation secret; give the same secret "
                "(argument, $GRIDTWIN_SECRET or $GRIDTWIN_SECRET_FILE) or ids would no longer match"
            )

    def _hash(self, kind: str, value: str) -> str:
        digest = hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:20]
        return f"{kind[0]}_{digest}"

    def meter(self, meter_id: str) -> str:
        """The pseudonym of one meter id."""
        key = str(meter_id)
        if (hit := self._known.get(key)) is None:
            hit = self._known[key] = self._hash("meter", key)
            if len(self._known) > 2_000_000:  # bounded: a population of meters, not of readings
                self._known.clear()
        return hit

    def customer(self, customer_id: str) -> str:
        """The pseudonym of one customer id ("" stays "")."""
        return self._hash("customer", str(customer_id)) if customer_id else ""

    def meters(self, ids: Iterable[str]) -> np.ndarray:
        """Pseudonyms of many meter ids (each distinct id hashed once)."""
        values = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=object)
        uniques, inverse = np.unique(values.astype(str), return_inverse=True)
        return np.array([self.meter(u) for u in uniques], dtype=object)[inverse]

    def customers(self, ids: Iterable[str]) -> np.ndarray:
        """Pseudonyms of many customer ids."""
        values = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=object)
        uniques, inverse = np.unique(values.astype(str), return_inverse=True)
        return np.array([self.customer(u) for u in uniques], dtype=object)[inverse]


def _customer_columns(store: Store, customer_id: str) -> np.ndarray:
    g = store._root["measurements"] if "measurements" in store.groups() else None
    if g is None:
        return np.zeros(0, dtype=np.int64)
    pseudonym = store.pseudonymiser.customer(customer_id)
    return np.flatnonzero(g["customer"][:].astype(object) == pseudonym)


def erase_customer(store: Store, customer_id: str) -> dict[str, int]:
    """Remove one customer's data from the store (right to be forgotten), in one atomic batch.

    Every value and quality flag of the customer's meters becomes missing in every variable of ``measurements``,
    the meters' ids and customer/load/bus/trafo labels are replaced by an anonymous tombstone (``erased-<n>``), and
    the columns of per-load groups fed only by this customer's meters are cleared too. Chunk files are rewritten,
    so no file of the store holds the old bytes afterwards. Returns counts of what was erased.
    """
    cols = _customer_columns(store, customer_id)
    if not len(cols):
        raise KeyError(f"no meter of customer {customer_id!r} in {store.path} (check the id and the secret)")
    g = store._root["measurements"]
    loads = set(g["load"][:].astype(object)[cols]) - {""}
    other = np.setdiff1d(np.arange(g["load"].shape[0]), cols)
    shared = set(g["load"][:].astype(object)[other]) if len(other) else set()
    own_loads = sorted(loads - shared)
    erased_values = 0
    with store.batch():
        for name, arr in list(g.arrays()):
            if arr.ndim == 2:
                fill = arr.fill_value
                for c in cols:
                    erased_values += int(arr.shape[0]) if not name.startswith("quality_") else 0
                    arr[:, int(c)] = np.full(arr.shape[0], fill, dtype=arr.dtype)
        tomb = np.array([f"erased-{secrets.token_hex(6)}" for _ in cols], dtype=object)
        for coord, values in (
            ("meter", tomb),
            *((c, np.full(len(cols), "", dtype=object)) for c in ("customer", "load", "bus", "trafo")),
        ):
            current = g[coord][:].astype(object)
            current[cols] = values
            g[coord][:] = current.astype(str)
        cleared_loads = _clear_load_columns(store, own_loads)
    store._device_index.clear()
    return {"meters": len(cols), "values": erased_values, "load_columns": cleared_loads}


def _clear_load_columns(store: Store, loads: list[str]) -> int:
    if not loads or "loads" not in store.groups():
        return 0
    g = store._root["loads"]
    ids = g["load"][:].astype(object)
    cols = np.flatnonzero(np.isin(ids, loads))
    for _, arr in g.arrays():
        if arr.ndim == 2 and arr.dtype.kind == "f":
            for c in cols:
                arr[:, int(c)] = np.full(arr.shape[0], np.nan)
    return len(cols)


def export_customer(store: Store, customer_id: str, meters: pd.DataFrame | None = None) -> xr.Dataset:
    """All measurements of one customer (data portability), with clear meter ids where ``meters`` maps them."""
    cols = _customer_columns(store, customer_id)
    if not len(cols):
        raise KeyError(f"no meter of customer {customer_id!r} in {store.path} (check the id and the secret)")
    ds = store.dataset("measurements").isel(meter=cols).load()
    labels = ds["meter"].to_numpy().astype(object)
    if meters is not None:
        clear = {store.pseudonymiser.meter(m): str(m) for m in meters.index.astype(str)}
        labels = np.array([clear.get(m, m) for m in labels], dtype=object)
    ds = ds.assign_coords(meter=labels, customer=("meter", np.full(len(cols), customer_id, dtype=object)))
    ds.attrs = {
        "customer": customer_id,
        "exported_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "source": str(store.path),
    }
    return ds
