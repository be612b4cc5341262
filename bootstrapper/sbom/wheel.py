"""The SBOM each built wheel carries in ``.dist-info/sboms/`` (PEP 770).

It describes the wheel's own package and where it came from: the source archive it was
built from (with its sha256) as the package's pedigree ancestor, the patches applied to
that source (their text, as pedigree patches), and the wheels of the build environment
as components of scope ``excluded`` (present while building, not at run time), each
marked ``bootstrapper:build-dependency``. It names files and hashes only, never paths,
URLs, times or tool versions: the same inputs give the same bytes, so the wheel stays
reproducible.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.utils import NormalizedName, canonicalize_name

from ..records import EnvWheel

if TYPE_CHECKING:
    from cyclonedx.model.component import Patch

#: Where the SBOM goes, relative to the ``.dist-info`` directory. Named for the tool
#: that wrote it, as PEP 770 asks of tools that add an SBOM: a backend's own SBOM of
#: the package, under the package's name, is never overwritten.
WHEEL_SBOM = "sboms/bootstrapper.cdx.json"
#: The first build recipe (``plan.recipe`` of a record) whose wheels carry the SBOM.
#: Wheels of earlier recipes are not reused (their plan differs), but a build order
#: recorded by one is rebuilt as it was: without the SBOM, to the same bytes.
SBOM_RECIPE = 3


@dataclass(frozen=True)
class PatchText:
    """A patch applied to the source: its file name, sha256 and bytes."""

    filename: str
    sha256: str
    data: bytes


@dataclass(frozen=True)
class WheelInputs:
    """What the SBOM of one built wheel says."""

    name: NormalizedName
    #: The wheel's version (a rebuild scheme may have changed the source's).
    version: str
    source_version: str
    source: str
    source_sha256: str
    build_env: Sequence[EnvWheel] = ()
    patches: Sequence[PatchText] = ()


def wheel_sbom(inputs: WheelInputs) -> bytes:
    """The CycloneDX JSON document of a wheel built from ``inputs``."""
    # Imported here: the library takes longer to import than a command that builds
    # nothing takes to run.
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import ComponentScope, Pedigree
    from cyclonedx.model.dependency import Dependency

    from ._cdx import distribution, prop, render

    source = distribution(inputs.name, inputs.source_version, inputs.source, inputs.source_sha256)
    package = distribution(
        inputs.name,
        inputs.version,
        None,  # the file's name and hash are outside it
        None,
        properties=[prop("patch", f"{p.filename} sha256:{p.sha256}") for p in inputs.patches],
        pedigree=Pedigree(
            ancestors=[source],
            patches=[_patch(p) for p in inputs.patches] or None,
        ),
    )
    env = [
        distribution(
            canonicalize_name(w.name),
            w.version,
            w.filename,
            w.sha256,
            scope=ComponentScope.EXCLUDED,
            properties=[prop("build-dependency", "true")],
        )
        for w in inputs.build_env
    ]
    bom = Bom(components=env)
    bom.metadata.component = package
    bom.dependencies.add(
        Dependency(ref=package.bom_ref, dependencies=[Dependency(ref=c.bom_ref) for c in env])
    )
    return render(bom).encode()


def _patch(patch: PatchText) -> Patch:
    from cyclonedx.model import AttachedText, Encoding
    from cyclonedx.model.component import Diff, Patch, PatchClassification

    try:
        text = AttachedText(content=patch.data.decode("utf-8"), content_type="text/x-diff")
    except UnicodeDecodeError:
        text = AttachedText(
            content=base64.b64encode(patch.data).decode(),
            content_type="text/x-diff",
            encoding=Encoding.BASE_64,
        )
    # "unofficial": a change the package's authors did not make (CycloneDX's term).
    return Patch(type=PatchClassification.UNOFFICIAL, diff=Diff(text=text, url=None))
