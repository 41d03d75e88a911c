"""Read CGMES 2.4.15 files with cimpy into one merged object model (no mapping to a Grid here).

:func:`read_cgmes` takes a list of XML files, a folder or a zip holding the profiles of one model
(EQ, TP, SSH, SV, boundary sets), checks each file, pre-cleans the text in memory and hands all
files to :func:`cimpy.cim_import` in one call, so the objects of every profile are merged by mRID.

Pre-cleaning (in memory; the files are never changed):

- integers written as decimals (``<cim:Terminal.sequenceNumber>1.000000</...>``) on attributes
  that cimpy types as ``int`` are rewritten as integers: cimpy calls ``int("1.000000")`` and raises
  ``ValueError`` otherwise;
- the CIM namespace of every file is set to that of the first file: cimpy takes the namespace of the
  first file only and silently skips the elements of files written with another CIM16 namespace
  (``.../2012/CIM-schema-cim16#`` versus ``.../2013/CIM-schema-cim16#``).

CGMES 3.0 files (namespace ``http://iec.ch/TC57/CIM100#``) are refused with an error: cimpy 1.1.0
returns no objects for them without raising.
"""

from __future__ import annotations

import importlib
import io
import logging
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

__all__ = ["CgmesReadError", "CimModel", "read_cgmes"]

CGMES_VERSION = "cgmes_v2_4_15"
CIM100_NS = "http://iec.ch/TC57/CIM100#"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_DECIMAL_INT = re.compile(rb"<(cim:([A-Za-z]+)\.([A-Za-z0-9_]+))>\s*(-?\d+)\.0*\s*</\1>")
_ATTRIBUTE_TAG = re.compile(rb"<cim:([A-Za-z]+\.[A-Za-z0-9_]+)[\s>/]")
#: references from Terminals that the mapping needs to name when their target is missing
_TERMINAL_REFS = ("Terminal.TopologicalNode", "Terminal.ConnectivityNode", "Terminal.ConductingEquipment")


class CgmesReadError(ValueError):
    """A CGMES input cannot be read; the message names the file."""


@dataclass
class CimModel:
    """All CIM objects of one model, merged over its profiles.

    Attributes
    ----------
    objects : dict of str to object
        cimpy objects keyed by mRID (rdf:ID without the leading ``#``).
    files : list of str
        Names of the files read, in order.
    profiles : dict of str to str
        Profile URI of each file (``Model.profile``), ``""`` when the header has none.
    attributes : set of str
        ``Class.attribute`` tags present in any file. cimpy fills absent attributes with defaults
        (``connected=False``, ``p=0.0``); this set tells a default from a value in the file.
    terminal_refs : dict of str to dict of str to str
        Raw node and equipment references of each Terminal (``{"Terminal.TopologicalNode": id}``),
        kept to name a missing target (cimpy drops references it cannot resolve).
    limit_types : dict of str to str
        ``limitType`` of each OperationalLimitType mRID (``"patl"``, ``"tatl"``, ...): CGMES 2.4.15
        writes it in the ``entsoe`` namespace, which cimpy does not read.
    cimpy_messages : dict of str to int
        Problems cimpy reported while reading (message → count), e.g. classes it does not know.
    namespace : str
        The CIM namespace of the model.
    """

    objects: dict[str, Any]
    files: list[str]
    profiles: dict[str, str] = field(default_factory=dict)
    attributes: set[str] = field(default_factory=set)
    terminal_refs: dict[str, dict[str, str]] = field(default_factory=dict)
    limit_types: dict[str, str] = field(default_factory=dict)
    cimpy_messages: dict[str, int] = field(default_factory=dict)
    namespace: str = ""

    def of_class(self, *names: str) -> list[Any]:
        """Return the objects whose class is one of ``names`` (exact class names, no subclasses)."""
        wanted = set(names)
        return [o for o in self.objects.values() if type(o).__name__ in wanted]

    def has(self, tag: str) -> bool:
        """Whether any file gives the attribute ``tag`` (``"EnergyConsumer.p"``)."""
        return tag in self.attributes

    def class_counts(self) -> Counter[str]:
        """Number of objects per CIM class."""
        return Counter(type(o).__name__ for o in self.objects.values())


def _collect_inputs(paths: str | Path | list[str | Path] | tuple[str | Path, ...]) -> list[tuple[str, bytes]]:
    """Return ``(name, content)`` of every XML file named by ``paths`` (files, folders, zips)."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    if not items:
        raise CgmesReadError("no CGMES input given: pass XML files, a folder or a zip")
    out: list[tuple[str, bytes]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in (".xml", ".zip"))
            if not found:
                raise CgmesReadError(f"{p}: folder holds no .xml or .zip files")
            out += _collect_inputs(found)
        elif p.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(p) as zf:
                    names = sorted(n for n in zf.namelist() if n.lower().endswith(".xml"))
                    if not names:
                        raise CgmesReadError(f"{p}: zip holds no .xml files")
                    out += [(f"{p}!{n}", zf.read(n)) for n in names]
            except (OSError, zipfile.BadZipFile) as err:
                raise CgmesReadError(f"{p}: cannot read zip: {err}") from err
        else:
            try:
                out.append((str(p), p.read_bytes()))
            except OSError as err:
                raise CgmesReadError(f"{p}: cannot read file: {err}") from err
    return out


def _int_attributes(tags: set[tuple[str, str]]) -> set[bytes]:
    """Return the ``Class.attr`` tags among ``tags`` whose cimpy default is an ``int``."""
    out: set[bytes] = set()
    for cls, attr in tags:
        try:
            klass = getattr(importlib.import_module(f"cimpy.{CGMES_VERSION}.{cls}"), cls)
        except (ModuleNotFoundError, AttributeError):
            continue
        default = getattr(klass(), attr, None)
        if isinstance(default, int) and not isinstance(default, bool):
            out.add(f"{cls}.{attr}".encode())
    return out


def _clean(content: bytes, namespace: bytes, own_namespace: bytes) -> bytes:
    """Rewrite decimal integers on int attributes and unify the CIM namespace (see module doc)."""
    if own_namespace != namespace:
        content = content.replace(own_namespace, namespace)
    candidates = {(m.group(2).decode(), m.group(3).decode()) for m in _DECIMAL_INT.finditer(content)}
    if not candidates:
        return content
    int_tags = _int_attributes(candidates)

    def fix(m: re.Match[bytes]) -> bytes:
        if f"{m.group(2).decode()}.{m.group(3).decode()}".encode() in int_tags:
            return b"<%s>%s</%s>" % (m.group(1), m.group(4), m.group(1))
        return m.group(0)

    return _DECIMAL_INT.sub(fix, content)


def _about(elem: etree._Element) -> str:
    """The mRID an element defines or extends (rdf:ID, or rdf:about without ``#``)."""
    return elem.get(f"{{{RDF_NS}}}ID") or (elem.get(f"{{{RDF_NS}}}about") or "").lstrip("#")


def _check_file(name: str, content: bytes) -> tuple[str, str, dict[str, dict[str, str]], dict[str, str]]:
    """Parse one file; return its CIM namespace, profile, Terminal references and limit types.

    Raises
    ------
    CgmesReadError
        Malformed XML, no CIM namespace, or a CGMES 3.0 file.
    """
    try:
        root = etree.fromstring(content, parser=etree.XMLParser(huge_tree=True))
    except etree.XMLSyntaxError as err:
        raise CgmesReadError(f"{name}: malformed XML: {err}") from err
    ns = root.nsmap.get("cim", "")
    if ns == CIM100_NS or CIM100_NS in root.nsmap.values():
        raise CgmesReadError(
            f"{name}: CGMES 3.0 file (namespace {CIM100_NS}); cimpy 1.1.0 reads CGMES 2.4.15 only and returns no "
            "objects for 3.0 files. A fallback reader for CGMES 3.0 is not implemented yet."
        )
    if not ns:
        raise CgmesReadError(f"{name}: no 'cim' namespace on the root element; not a CGMES RDF/XML file")
    profile = " ".join(e.text or "" for e in root.iter("{*}Model.profile"))
    refs: dict[str, dict[str, str]] = {}
    for tag in _TERMINAL_REFS:
        for e in root.iter(f"{{{ns}}}{tag}"):
            target = (e.get(f"{{{RDF_NS}}}resource") or "").lstrip("#")
            refs.setdefault(_about(e.getparent()), {})[tag] = target
    limit_types = {
        _about(e.getparent()): (e.get(f"{{{RDF_NS}}}resource") or e.text or "").rsplit(".", 1)[-1].lower()
        for e in root.iter("{*}OperationalLimitType.limitType")
    }
    return ns, profile, refs, limit_types


class _CountingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        text, _, count = msg.rpartition(": ")
        self.counts[text or msg] += int(count.split()[0]) if count.split() and count.split()[0].isdigit() else 1


def read_cgmes(paths: str | Path | list[str | Path] | tuple[str | Path, ...]) -> CimModel:
    """Read the CGMES 2.4.15 profiles of one model with cimpy and merge them.

    Parameters
    ----------
    paths : path, or list of paths
        XML files, folders (every ``.xml``/``.zip`` inside) or zip files; all profiles of one model
        (EQ, TP, SSH, SV and boundary sets when present).

    Returns
    -------
    CimModel
        Objects keyed by mRID plus what the mapping needs to tell defaults from given values.

    Raises
    ------
    CgmesReadError
        An input cannot be read, is malformed XML, is not CGMES RDF/XML or is CGMES 3.0; the
        message names the file.
    """
    import cimpy

    inputs = _collect_inputs(paths)
    checked = [(name, content, *_check_file(name, content)) for name, content in inputs]
    namespace = checked[0][2]
    cleaned: list[io.BytesIO] = []
    model = CimModel(objects={}, files=[c[0] for c in checked], namespace=namespace)
    for name, content, ns, profile, refs, limit_types in checked:
        data = _clean(content, namespace.encode(), ns.encode())
        model.profiles[name] = profile
        model.attributes.update(m.group(1).decode() for m in _ATTRIBUTE_TAG.finditer(data))
        for tid, r in refs.items():
            model.terminal_refs.setdefault(tid, {}).update(r)
        model.limit_types.update(limit_types)
        cleaned.append(io.BytesIO(data))
    logger = logging.getLogger("cimpy.cimimport")
    handler = _CountingHandler()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        result = cimpy.cim_import(cleaned, CGMES_VERSION)
    except (ValueError, TypeError) as err:
        raise CgmesReadError(f"cimpy could not read {model.files}: {err}") from err
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    model.objects = result["topology"]
    model.cimpy_messages = dict(handler.counts)
    return model
