"""Read CGMES RDF/XML with lxml into cimpy's CGMES 2.4.15 object model (the CGMES 3.0 fallback).

cimpy 1.1.0 reads CGMES 2.4.15 only: given CGMES 3.0 files (namespace ``http://iec.ch/TC57/CIM100#``)
it returns no objects and raises nothing. This module builds the objects the mapping
(``cim/mapping``) consumes from such files: instances of cimpy's ``cgmes_v2_4_15`` classes, keyed by
mRID, with attributes converted to the type of cimpy's default and references resolved to objects,
including cimpy's one inverse rule (``RatioTapChanger.TransformerEnd`` also sets
``PowerTransformerEnd.RatioTapChanger``). The reader is not tied to CIM100; only :data:`CIM100`
translation is applied when ``cim100=True``.

CGMES 3.0 versus 2.4.15, as handled here (see ``docs/design/cim.md``):

- identifiers: ``rdf:ID="_X"``, ``rdf:about="#_X"`` and ``rdf:about="urn:uuid:X"`` (or a resource
  ``urn:uuid:X``) name the same object ``_X``; ``IdentifiedObject.mRID`` (new in 3.0, written without
  the underscore) is not used as the id, so ids stay the rdf ids, as with cimpy on 2.4.15;
- ``CurrentLimit.normalValue`` (EQ) and ``CurrentLimit.value`` (SSH, optional in 3.0): ``value`` is
  the SSH value, else ``normalValue``; the same for every OperationalLimit;
- ``Equipment.inService`` (SSH, new in 3.0) ``false`` disconnects the equipment's terminals
  (the mapping takes a disconnected terminal as out of service);
- ``eu:OperationalLimitType.kind`` replaces ``entsoe:OperationalLimitType.limitType`` (read in
  :mod:`cim.read` for both);
- classes new in 3.0 become subclasses of their nearest cimpy class under their own name
  (:data:`CIM100_CLASSES`: ``Fuse``, ``Jumper``, ``Cut`` → Switch, ``DisconnectingCircuitBreaker`` →
  Breaker, ``PowerElectronicsConnection`` → RegulatingCondEq, ``Clamp`` → ConductingEquipment), so the
  import report lists them and warns where they change the power flow; other unknown classes are
  counted like cimpy does (``"Module X not implemented"``);
- integers written as decimals (``"10.000000"``) are read, and non-integral values on attributes
  cimpy types as ``int`` (``acceptableDuration``, ``aVRDelay``: seconds) are kept as floats.
"""

from __future__ import annotations

import gc
import importlib
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lxml import etree

__all__ = ["CIM100_CLASSES", "RdfObjects", "RdfReadError", "read_rdf"]

RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_ID = f"{{{RDF_NS}}}ID"
_ABOUT = f"{{{RDF_NS}}}about"
_RESOURCE = f"{{{RDF_NS}}}resource"
_URN = "urn:uuid:"
_CIMPY = "cimpy.cgmes_v2_4_15"

#: CGMES 3.0 classes unknown to cimpy's 2.4.15 package → the cimpy class they are read as a subclass of
CIM100_CLASSES = {
    "Fuse": "Switch",
    "Jumper": "Switch",
    "Cut": "Switch",
    "DisconnectingCircuitBreaker": "Breaker",
    "PowerElectronicsConnection": "RegulatingCondEq",
    "Clamp": "ConductingEquipment",
}

# attribute kinds, from the type of cimpy's default
_BOOL, _INT, _FLOAT, _OTHER = 0, 1, 2, 3
# tag kinds that set no cimpy attribute: mRID (the rdf id is used), CGMES 3.0 extras, unknown
_SKIP, _EXTRA, _UNKNOWN = 4, 5, 6
#: CGMES 3.0 attributes cimpy's 2.4.15 classes lack, kept for :func:`_translate_cim100` (kind of value)
_EXTRA_ATTRIBUTES = {"normalValue": _FLOAT, "inService": _BOOL}
#: attributes cimpy types wrongly: Season dates are MonthDay text ("--12-31"), not floats
_KIND_FIXES = {("Season", "startDate"): _OTHER, ("Season", "endDate"): _OTHER}


class RdfReadError(ValueError):
    """A value in an RDF/XML file cannot be read; the message names the file, the mRID and the attribute."""


@dataclass
class _Klass:
    """A cimpy class with its prototype attribute values and their kinds."""

    cls: type
    defaults: dict[str, Any]
    kinds: dict[str, int]
    tags: dict[str, tuple[str, int]] = field(default_factory=dict)

    def new(self, mrid: str) -> Any:
        obj = self.cls.__new__(self.cls)
        obj.__dict__.update(self.defaults)
        if "mRID" in self.defaults:
            obj.mRID = mrid
        return obj


@dataclass
class RdfObjects:
    """What :func:`read_rdf` returns.

    Attributes
    ----------
    objects : dict of str to object
        cimpy objects keyed by mRID (rdf id without ``#``; ``urn:uuid:X`` → ``_X``).
    messages : dict of str to int
        Problems met (message → count), worded as cimpy's log (``"Module X not implemented"``).
    attributes : set of str
        ``Class.attribute`` tags present in the files, plus the 2.4.15 tags filled by translation.
    """

    objects: dict[str, Any]
    messages: dict[str, int] = field(default_factory=dict)
    attributes: set[str] = field(default_factory=set)


class _Classes:
    """Lookup of cimpy classes by CIM class name, cached; None for classes cimpy does not know."""

    def __init__(self, cim100: bool) -> None:
        self._cache: dict[str, _Klass | None] = {}
        self._cim100 = cim100

    def _load(self, name: str) -> type | None:
        try:
            return getattr(importlib.import_module(f"{_CIMPY}.{name}"), name)
        except (ModuleNotFoundError, AttributeError):
            pass
        base_name = CIM100_CLASSES.get(name) if self._cim100 else None
        base = self._load(base_name) if base_name else None
        if base is None:
            return None
        return type(name, (base,), {"__doc__": f"CGMES 3.0 {name}, read as a {base_name} (gridtwin placeholder)."})

    def get(self, name: str) -> _Klass | None:
        if name not in self._cache:
            cls = self._load(name)
            if cls is None:
                self._cache[name] = None
            else:
                defaults = dict(cls().__dict__)
                kinds = {a: _KIND_FIXES.get((name, a), _kind(v)) for a, v in defaults.items()}
                self._cache[name] = _Klass(cls, defaults, kinds)
        return self._cache[name]


def _kind(value: Any) -> int:
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, int):
        return _INT
    if isinstance(value, float):
        return _FLOAT
    return _OTHER


def _rdf_id(ref: str) -> str:
    """Normalise an rdf reference to an mRID: ``#_X`` → ``_X``, ``urn:uuid:X`` → ``_X``."""
    if ref.startswith("#"):
        return ref[1:]
    if ref.startswith(_URN):
        return "_" + ref[len(_URN) :]
    return ref


def _convert(kind: int, text: str) -> Any:
    """Convert a text value to the kind of cimpy's default (ValueError when it is not a number)."""
    if kind == _FLOAT:
        return float(text)
    if kind == _INT:
        number = float(text)
        return int(number) if number.is_integer() else number
    if kind == _BOOL:
        return text.strip().lower() == "true"
    return text


@dataclass
class _Pending:
    """Attribute elements of one object element, kept until every file's objects exist."""

    file: str
    mrid: str
    cls: str
    values: list[tuple[str, str | None, str | None]]


def _instantiate(
    name: str, root: etree._Element, cim_ns: str, classes: _Classes, out: RdfObjects, pending: list[_Pending]
) -> None:
    """Create the objects one file defines and queue its attribute elements."""
    prefix = f"{{{cim_ns}}}"
    n = len(prefix)
    messages = Counter[str]()
    for elem in root:
        tag = elem.tag
        if not isinstance(tag, str) or not tag.startswith(prefix):
            continue
        cls_name = tag[n:]
        rid = elem.get(_ID)
        about = None if rid is not None else elem.get(_ABOUT)
        if rid is None and about is None:
            continue
        mrid = rid if rid is not None else _rdf_id(about)
        defines = rid is not None or about.startswith(_URN)
        if defines and mrid not in out.objects:
            klass = classes.get(cls_name)
            if klass is None:
                messages[f"Module {cls_name} not implemented"] += 1
                continue
            out.objects[mrid] = klass.new(mrid)
        values = [
            (child.tag[n:], child.get(_RESOURCE), child.text)
            for child in elem
            if isinstance(child.tag, str) and child.tag.startswith(prefix)
        ]
        pending.append(_Pending(name, mrid, cls_name, values))
    for msg, k in messages.items():
        out.messages[msg] = out.messages.get(msg, 0) + k


def _link(obj: Any, attr: str, kind_default: Any, val: Any) -> None:
    """Set reference ``obj.attr = val`` (appending for many-valued ones) and cimpy's inverse rule."""
    if kind_default is None or kind_default == "list":
        obj.__dict__[attr] = val if kind_default is None else [val]
    elif isinstance(kind_default, list):
        if not kind_default or kind_default[-1] is not val:
            kind_default.append(val)
    else:
        obj.__dict__[attr] = val
    back = type(obj).__name__
    current = val.__dict__.get(back, False)
    if current is None:
        val.__dict__[back] = obj
    elif current == "list":
        val.__dict__[back] = [obj]
    elif isinstance(current, list) and (not current or current[-1] is not obj):
        current.append(obj)


def _tag_kind(klass: _Klass, tag: str, out: RdfObjects) -> tuple[str, int]:
    """Attribute name and kind of an attribute tag on a class (cached per class; records the tag)."""
    found = klass.tags.get(tag)
    if found is None:
        attr = tag.rsplit(".", 1)[-1]
        if attr == "mRID":
            kind = _SKIP
        elif attr in klass.kinds:
            kind = klass.kinds[attr]
        else:
            kind = _EXTRA if attr in _EXTRA_ATTRIBUTES else _UNKNOWN
        found = klass.tags[tag] = (attr, kind)
        out.attributes.add(tag)
    return found


def _count(out: RdfObjects, message: str) -> None:
    out.messages[message] = out.messages.get(message, 0) + 1


def _apply(item: _Pending, out: RdfObjects, classes: _Classes, extra: dict[str, dict[str, Any]]) -> None:
    """Set the queued attributes of one object element on its object."""
    objects = out.objects
    obj = objects.get(item.mrid)
    if obj is None:
        if classes.get(item.cls) is not None:
            _count(out, f"Missing {item.cls} object with uuid: {item.mrid}")
        return
    klass = classes.get(type(obj).__name__)
    assert klass is not None  # every object was made from a known class
    d = obj.__dict__
    for tag, resource, text in item.values:
        attr, kind = _tag_kind(klass, tag, out)
        if kind >= _SKIP:
            if kind == _EXTRA:
                extra.setdefault(attr, {})[item.mrid] = _convert(_EXTRA_ATTRIBUTES[attr], text or "")
            elif kind == _UNKNOWN:
                _count(out, f"'{type(obj).__name__}' has not attribute '{attr}'")
        elif resource is None:
            try:
                d[attr] = float(text) if kind == _FLOAT else _convert(kind, text or "")  # type: ignore[arg-type]
            except (TypeError, ValueError) as err:
                raise RdfReadError(f"{item.file}: {item.cls} {item.mrid!r}: {tag} = {text!r} is not a number") from err
            if attr == "value":
                extra.setdefault("value", {})[item.mrid] = True
        elif resource[0] == "#" or resource.startswith(_URN):
            target = objects.get(resource[1:] if resource[0] == "#" else _rdf_id(resource))
            if target is None:
                _count(out, f"Referenced {type(obj).__name__} [{_rdf_id(resource)}] object missing.")
            else:
                _link(obj, attr, d[attr], target)
        else:  # enumeration: keep the value after the last dot, as cimpy does
            d[attr] = resource.rsplit(".", 1)[-1]


def _translate_cim100(out: RdfObjects, extra: dict[str, dict[str, Any]]) -> None:
    """Fill the 2.4.15 attributes the mapping reads from their CGMES 3.0 counterparts."""
    for mrid, value in extra.get("normalValue", {}).items():
        obj = out.objects[mrid]
        if "value" in obj.__dict__ and mrid not in extra.get("value", {}):
            obj.value = value
    out_of_service = {m for m, on in extra.get("inService", {}).items() if not on}
    if out_of_service:
        n = 0
        for obj in out.objects.values():
            eq = obj.__dict__.get("ConductingEquipment")
            if type(obj).__name__ == "Terminal" and eq is not None and eq.mRID in out_of_service:
                obj.connected = False
                n += 1
        out.attributes.add("ACDCTerminal.connected")
        out.messages[f"Equipment.inService false: {n} terminals disconnected"] = len(out_of_service)


def read_rdf(files: list[tuple[str, etree._Element]], *, cim100: bool) -> RdfObjects:
    """Build cimpy objects from parsed CGMES RDF/XML files, merged over all files by mRID.

    Parameters
    ----------
    files : list of (str, lxml element)
        File name (for messages) and parsed root element, one per profile file. Elements in each
        file's own ``cim`` namespace are read (CIM16 files may use the 2012 or the 2013 URI).
    cim100 : bool
        Apply the CGMES 3.0 → 2.4.15 translation (module doc).

    Returns
    -------
    RdfObjects
        Objects by mRID, messages with counts, attribute tags present.

    Raises
    ------
    RdfReadError
        A numeric attribute holds text that is not a number (names file, mRID and attribute).
    """
    classes = _Classes(cim100)
    out = RdfObjects(objects={})
    pending: list[_Pending] = []
    extra: dict[str, dict[str, Any]] = {}
    # The objects and tuples made here are acyclic until linked and all survive: the cyclic garbage
    # collector would rescan them again and again (half the time on RealGrid), so it is paused.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for name, root in files:
            _instantiate(name, root, root.nsmap.get("cim", ""), classes, out, pending)
        for item in pending:
            _apply(item, out, classes, extra)
    finally:
        if gc_was_enabled:
            gc.enable()
    if cim100:
        _translate_cim100(out, extra)
    return out
