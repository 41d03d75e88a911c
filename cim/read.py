"""Read CGMES 2.4.15 and 3.0 files into one merged cimpy object model (no mapping to a Grid here).

:func:`read_cgmes` takes a list of XML files, a folder or a zip holding the profiles of one model
(EQ, TP, SSH, SV, boundary sets), parses each file with lxml (malformed XML names the file), keeps
what cimpy would lose (attribute tags present, raw Terminal references, limit kinds) and builds
instances of cimpy's CGMES 2.4.15 classes merged by mRID:

- by default with :func:`cim.read_rdf.read_rdf` from the trees already parsed (RealGrid: 3.7 s for
  read and mapping against 12 s through cimpy; the same objects, checked in ``tests/cim``);
- with ``reader="cimpy"``, CGMES 2.4.15 files go to one :func:`cimpy.cim_import` call after
  in-memory pre-cleaning (the files are never changed):

  - integers written as decimals (``<cim:Terminal.sequenceNumber>1.000000</...>``) on attributes
    that cimpy types as ``int`` are rewritten as integers (cimpy calls ``int("1.000000")`` and
    raises); non-integral values on such attributes (``acceptableDuration`` 9.99 s) are taken out
    and set on the objects after the import;
  - the CIM namespace of every file is set to that of the first file: cimpy takes the namespace of
    the first file only and silently skips the elements of files written with another CIM16
    namespace (``.../2012/CIM-schema-cim16#`` versus ``.../2013/CIM-schema-cim16#``).

CGMES 3.0 files (namespace ``http://iec.ch/TC57/CIM100#``) always go to
:func:`cim.read_rdf.read_rdf` (cimpy 1.1.0 returns no objects for them without raising); its module
doc lists the 3.0 differences handled. 2.4.15 and 3.0 files cannot be mixed in one model.
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
from typing import Any, Literal

from lxml import etree

from cim.read_rdf import RdfReadError, read_rdf

__all__ = ["CgmesReadError", "CimModel", "read_cgmes"]

CGMES_VERSION = "cgmes_v2_4_15"
CIM100_NS = "http://iec.ch/TC57/CIM100#"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_DECIMAL = re.compile(rb"<(cim:([A-Za-z]+)\.([A-Za-z0-9_]+))>\s*(-?\d+)\.(\d*)\s*</\1>")
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
    cgmes_version: str = "2.4.15"
    _by_class: dict[str, list[Any]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _indexed: int = field(default=-1, init=False, repr=False, compare=False)

    def of_class(self, *names: str) -> list[Any]:
        """Return the objects whose class is one of ``names`` (exact class names, no subclasses)."""
        by_class = self._index()
        if len(names) == 1:
            return list(by_class.get(names[0], ()))
        wanted = set(names)
        return [o for o in self.objects.values() if type(o).__name__ in wanted]

    def _index(self) -> dict[str, list[Any]]:
        """Objects by class name, rebuilt when the number of objects changes."""
        if self._indexed != len(self.objects):
            self._by_class = {}
            for o in self.objects.values():
                self._by_class.setdefault(type(o).__name__, []).append(o)
            self._indexed = len(self.objects)
        return self._by_class

    def has(self, tag: str) -> bool:
        """Whether any file gives the attribute ``tag`` (``"EnergyConsumer.p"``)."""
        return tag in self.attributes

    def class_counts(self) -> Counter[str]:
        """Number of objects per CIM class."""
        return Counter({cls: len(objs) for cls, objs in self._index().items()})


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


def _clean(
    content: bytes, root: etree._Element, namespace: str, own_namespace: str
) -> tuple[bytes, list[tuple[str, str, float]]]:
    """Fix decimals on int attributes and unify the CIM namespace (see module doc).

    Returns the cleaned text and the non-integral values removed from it, ``(mRID, attribute,
    value)``, to be set after the cimpy import.
    """
    if own_namespace != namespace:
        content = content.replace(own_namespace.encode(), namespace.encode())
    candidates = {(m.group(2).decode(), m.group(3).decode()) for m in _DECIMAL.finditer(content)}
    if not candidates:
        return content, []
    int_tags = _int_attributes(candidates)
    if not int_tags:
        return content, []
    dropped: set[bytes] = set()

    def fix(m: re.Match[bytes]) -> bytes:
        tag = b"%s.%s" % (m.group(2), m.group(3))
        if tag not in int_tags:
            return m.group(0)
        if m.group(5).strip(b"0"):
            dropped.add(tag)
            return b""
        return b"<%s>%s</%s>" % (m.group(1), m.group(4), m.group(1))

    content = _DECIMAL.sub(fix, content)
    patches = [
        (_about(e.getparent()), tag.decode().rsplit(".", 1)[-1], float(e.text))
        for tag in sorted(dropped)
        for e in root.iter(f"{{{own_namespace}}}{tag.decode()}")
        if e.text and not float(e.text).is_integer()
    ]
    return content, patches


def _about(elem: etree._Element) -> str:
    """The mRID an element defines or extends (rdf:ID, or rdf:about without ``#``; ``urn:uuid:X`` → ``_X``)."""
    rid = elem.get(f"{{{RDF_NS}}}ID")
    return rid if rid is not None else _ref(elem.get(f"{{{RDF_NS}}}about") or "")


def _ref(ref: str) -> str:
    """mRID named by an rdf reference (``#_X`` → ``_X``; CGMES 3.0 ``urn:uuid:X`` → ``_X``)."""
    return "_" + ref[9:] if ref.startswith("urn:uuid:") else ref.lstrip("#")


def _parse(name: str, content: bytes) -> tuple[etree._Element, str]:
    """Parse one file; return its root element and CIM namespace.

    Raises
    ------
    CgmesReadError
        Malformed XML, or no CIM namespace.
    """
    try:
        root = etree.fromstring(content, parser=etree.XMLParser(huge_tree=True))
    except etree.XMLSyntaxError as err:
        raise CgmesReadError(f"{name}: malformed XML: {err}") from err
    ns = root.nsmap.get("cim", "")
    if not ns:
        raise CgmesReadError(f"{name}: no 'cim' namespace on the root element; not a CGMES RDF/XML file")
    return root, ns


def _file_facts(root: etree._Element, ns: str) -> tuple[str, dict[str, dict[str, str]], dict[str, str]]:
    """Return a file's profile, Terminal references and limit kinds (what cimpy loses)."""
    profile = " ".join(e.text or "" for e in root.iter("{*}Model.profile"))
    refs: dict[str, dict[str, str]] = {}
    for tag in _TERMINAL_REFS:
        for e in root.iter(f"{{{ns}}}{tag}"):
            refs.setdefault(_about(e.getparent()), {})[tag] = _ref(e.get(f"{{{RDF_NS}}}resource") or "")
    limit_types = {
        _about(e.getparent()): (e.get(f"{{{RDF_NS}}}resource") or e.text or "").rsplit(".", 1)[-1].lower()
        for tag in ("{*}OperationalLimitType.limitType", "{*}OperationalLimitType.kind")
        for e in root.iter(tag)
    }
    return profile, refs, limit_types


class _CountingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        text, _, count = msg.rpartition(": ")
        self.counts[text or msg] += int(count.split()[0]) if count.split() and count.split()[0].isdigit() else 1


def _read_rdf(model: CimModel, roots: list[tuple[str, etree._Element]]) -> None:
    """Fill ``model`` with :func:`cim.read_rdf.read_rdf` (CGMES 3.0, or 2.4.15 with ``reader="lxml"``)."""
    try:
        rdf = read_rdf(roots, cim100=model.cgmes_version == "3.0")
    except RdfReadError as err:
        raise CgmesReadError(str(err)) from err
    model.objects = rdf.objects
    model.attributes |= rdf.attributes
    model.cimpy_messages = rdf.messages


def _read_cimpy(model: CimModel, cleaned: list[bytes], patches: list[tuple[str, str, float]]) -> None:
    """Fill ``model`` from CGMES 2.4.15 files with one ``cimpy.cim_import`` call (pre-cleaned in memory)."""
    import cimpy

    logger = logging.getLogger("cimpy.cimimport")
    handler = _CountingHandler()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        result = cimpy.cim_import([io.BytesIO(data) for data in cleaned], CGMES_VERSION)
    except (ValueError, TypeError) as err:
        raise CgmesReadError(f"cimpy could not read {model.files}: {err}") from err
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    model.objects = result["topology"]
    model.cimpy_messages = dict(handler.counts)
    for mrid, attr, value in patches:
        if mrid in model.objects:
            setattr(model.objects[mrid], attr, value)


def read_cgmes(
    paths: str | Path | list[str | Path] | tuple[str | Path, ...], *, reader: Literal["lxml", "cimpy"] = "lxml"
) -> CimModel:
    """Read the CGMES 2.4.15 or 3.0 profiles of one model and merge them by mRID.

    Objects are instances of cimpy's CGMES 2.4.15 classes. By default they are built by
    :func:`cim.read_rdf.read_rdf` from the lxml trees parsed here (2.5x faster than cimpy's own
    import on RealGrid and free of its type quirks); ``reader="cimpy"`` hands CGMES 2.4.15 files to
    ``cimpy.cim_import`` instead (same objects; kept as the reference). CGMES 3.0 files always go to
    :func:`~cim.read_rdf.read_rdf`: cimpy 1.1.0 reads 2.4.15 only.

    Parameters
    ----------
    paths : path, or list of paths
        XML files, folders (every ``.xml``/``.zip`` inside) or zip files; all profiles of one model
        (EQ, TP, SSH, SV and boundary sets when present).
    reader : {"lxml", "cimpy"}
        Who builds the objects of CGMES 2.4.15 files.

    Returns
    -------
    CimModel
        Objects keyed by mRID plus what the mapping needs to tell defaults from given values.

    Raises
    ------
    CgmesReadError
        An input cannot be read, is malformed XML, is not CGMES RDF/XML, mixes CGMES 2.4.15 and 3.0
        files, or holds a value that is not a number; the message names the file (and the mRID).
    """
    if reader not in ("lxml", "cimpy"):
        raise ValueError(f"reader must be 'lxml' or 'cimpy', not {reader!r}")
    inputs = _collect_inputs(paths)
    roots: list[tuple[str, etree._Element]] = []  # files for read_rdf
    cleaned: list[bytes] = []  # CGMES 2.4.15 files, cleaned for cimpy
    patches: list[tuple[str, str, float]] = []
    model = CimModel(objects={}, files=[name for name, _ in inputs])
    for name, content in inputs:
        root, ns = _parse(name, content)
        model.namespace = model.namespace or ns
        profile, refs, limit_types = _file_facts(root, ns)
        model.profiles[name] = profile
        for tid, r in refs.items():
            model.terminal_refs.setdefault(tid, {}).update(r)
        model.limit_types.update(limit_types)
        if ns == CIM100_NS or reader == "lxml":
            roots.append((name, root))
        elif model.namespace != CIM100_NS:
            data, fixed = _clean(content, root, model.namespace, ns)
            model.attributes.update(m.group(1).decode() for m in _ATTRIBUTE_TAG.finditer(data))
            cleaned.append(data)
            patches += fixed
        if (ns == CIM100_NS) != (model.namespace == CIM100_NS):
            raise CgmesReadError(
                f"{name}: CIM namespace {ns} differs in version from the first file's ({model.namespace}); "
                "CGMES 2.4.15 and 3.0 files cannot be mixed in one model"
            )
    if model.namespace == CIM100_NS:
        model.cgmes_version = "3.0"
    if roots:
        _read_rdf(model, roots)
    else:
        _read_cimpy(model, cleaned, patches)
    return model
