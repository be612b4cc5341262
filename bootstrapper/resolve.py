"""Joint resolution of a requirement set with resolvelib.

The provider is a thin adapter: releases come from a ``ReleaseFinder``, dependencies from
a ``MetadataSource``. Extras are separate identifiers (``name[extra]``) whose candidates
depend on the plain project at the same version, so one version per project is chosen.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version
from resolvelib import BaseReporter, ResolutionImpossible, ResolutionTooDeep, Resolver
from resolvelib.providers import AbstractProvider

from .candidates import Release, allowed
from .errors import BootstrapError, NoSourceDistributionError, ResolutionError
from .metadata import CoreMetadata

logger = logging.getLogger(__name__)

Identifier = str


class ReleaseFinder(Protocol):
    def releases(self, name: NormalizedName) -> Sequence[Release]:
        """Buildable releases, newest first; raises UnknownProjectError."""

    def has_files(self, name: NormalizedName) -> bool:
        """Whether the index lists any file at all for ``name``."""

    def prefetch(self, names: Iterable[NormalizedName]) -> None:
        """Hint: these projects will probably be looked up soon."""


class MetadataSource(Protocol):
    def metadata(self, release: Release, chain: Sequence[str]) -> CoreMetadata:
        """The core metadata that ``release`` will have once built."""

    def anticipate(self, requirements: Sequence[Requirement], chain: Sequence[str]) -> None:
        """Hint: the metadata of a release matching each of ``requirements`` will
        probably be asked for soon (``chain`` led to them)."""

    def ready(self, release: Release) -> bool:
        """Whether the metadata of ``release`` is known or cheap to learn (it need not
        be built first): the resolver takes such projects first. Once true for a
        release, it stays true for the resolution."""


@dataclass(frozen=True)
class Candidate:
    release: Release
    extras: frozenset[NormalizedName] = frozenset()

    @property
    def name(self) -> NormalizedName:
        return self.release.name

    @property
    def version(self) -> Version:
        return self.release.version

    def __str__(self) -> str:
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        return f"{self.name}{extras}=={self.version}"


def _default_environment() -> dict[str, str]:
    return {k: str(v) for k, v in default_environment().items()}


def _python_version(environment: Mapping[str, str]) -> Version:
    try:
        return Version(environment["python_full_version"])
    except (KeyError, InvalidVersion):
        return Version(".".join(map(str, sys.version_info[:3])))


def _exact_pins(specifier: SpecifierSet) -> set[Version]:
    """The versions ``specifier`` pins exactly (for PEP 592: yanked files need one)."""
    pins = set()
    for spec in specifier:
        if spec.operator in ("==", "===") and "*" not in spec.version:
            with suppress(InvalidVersion):  # "===" may name any string, never a release
                pins.add(Version(spec.version))
    return pins


def identifier(name: NormalizedName, extras: Iterable[str]) -> Identifier:
    normalized = sorted(canonicalize_name(e) for e in extras)
    return f"{name}[{','.join(normalized)}]" if normalized else name


def split_identifier(ident: Identifier) -> tuple[NormalizedName, frozenset[NormalizedName]]:
    name, _, rest = ident.partition("[")
    extras = frozenset(NormalizedName(e) for e in rest.rstrip("]").split(",") if e)
    return NormalizedName(name), extras


@dataclass(frozen=True)
class Resolution:
    """One version per project, with what each one asked for."""

    pins: Mapping[NormalizedName, Release]
    extras: Mapping[NormalizedName, frozenset[NormalizedName]]
    #: The requirements each pin declared that apply here (markers evaluated).
    dependencies: Mapping[NormalizedName, tuple[Requirement, ...]]
    metadata: Mapping[NormalizedName, CoreMetadata]
    #: For each pin, the names leading to it from a root, itself last.
    chains: Mapping[NormalizedName, tuple[str, ...]] = field(default_factory=dict)


def applies(
    requirement: Requirement, environment: Mapping[str, str], extras: Iterable[str]
) -> bool:
    """Whether ``requirement``'s marker holds for the target with any of ``extras``."""
    if requirement.marker is None:
        return True
    for extra in ("", *extras):
        if requirement.marker.evaluate({**environment, "extra": extra}):
            return True
    return False


class _Preference:
    """The part of a project's preference that its requirements decide, and whether the
    release the resolver will most likely pick has its metadata at hand without a build
    (no candidate is iterated: that may build)."""

    def __init__(
        self, infos: tuple[Any, ...], pinned: bool, is_root: bool, likely: Release | None
    ) -> None:
        #: The requirement information it was made from (resolvelib keeps these objects
        #: while they stand, and makes new ones when the requirements change).
        self.infos = infos
        self.pinned = pinned
        self.is_root = is_root
        self._likely = likely
        self._ready = likely is None

    def holds_for(self, infos: tuple[Any, ...]) -> bool:
        return len(infos) == len(self.infos) and all(
            a is b for a, b in zip(infos, self.infos, strict=True)
        )

    def ready(self, metadata: MetadataSource) -> bool:
        # Once ready, always: metadata learnt in a run is never forgotten.
        if not self._ready:
            assert self._likely is not None
            try:
                self._ready = metadata.ready(self._likely)
            except BootstrapError:
                self._ready = True  # find_matches meets the error itself, with its chain
        return self._ready


class _Provider(AbstractProvider[Requirement, Candidate, Identifier]):
    def __init__(
        self,
        finder: ReleaseFinder,
        metadata: MetadataSource,
        constraints: Mapping[NormalizedName, SpecifierSet],
        environment: Mapping[str, str],
        allow_prereleases: bool,
        base_chain: Sequence[str],
    ) -> None:
        self._finder = finder
        self._metadata = metadata
        self._constraints = constraints
        self._environment = environment
        self._pre = allow_prereleases
        self.base_chain = tuple(base_chain)
        self._python = _python_version(environment)
        self.parents: dict[NormalizedName, NormalizedName | None] = {}
        self.used_metadata: dict[tuple[NormalizedName, Version], CoreMetadata] = {}
        # resolvelib asks every round about every project (O(n^2) questions for n
        # projects): the answers that depend only on objects it passes again unchanged
        # are kept, keyed by identity, with the objects themselves so no id is reused.
        self._preferences: dict[Identifier, _Preference] = {}
        self._satisfied: dict[int, tuple[Requirement, Candidate, bool]] = {}

    def chain_to(self, name: NormalizedName) -> tuple[str, ...]:
        path: list[str] = [name]
        seen = {name}
        parent = self.parents.get(name)
        while parent is not None and parent not in seen:
            path.append(parent)
            seen.add(parent)
            parent = self.parents.get(parent)
        return self.base_chain + tuple(reversed(path))

    def identify(self, requirement_or_candidate: Requirement | Candidate) -> Identifier:
        if isinstance(requirement_or_candidate, Candidate):
            return identifier(requirement_or_candidate.name, requirement_or_candidate.extras)
        return identifier(
            canonicalize_name(requirement_or_candidate.name), requirement_or_candidate.extras
        )

    def narrow_requirement_selection(
        self,
        identifiers: Iterable[Identifier],
        resolutions: Mapping[Identifier, Candidate],
        candidates: Mapping[Identifier, Iterator[Candidate]],
        information: Mapping[Identifier, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> Iterable[Identifier]:
        """The one project resolvelib would take next (the least preference; no two are
        equal, the identifier is part of it), chosen in one pass: resolvelib then asks
        no preference itself, which costs a call per project and round."""
        causes = (
            frozenset(self.identify(c.requirement) for c in backtrack_causes)
            if backtrack_causes
            else frozenset()
        )
        return [min(identifiers, key=lambda name: self._preference_of(name, information, causes))]

    def get_preference(
        self,
        identifier: Identifier,
        resolutions: Mapping[Identifier, Candidate],
        candidates: Mapping[Identifier, Iterator[Candidate]],
        information: Mapping[Identifier, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> Any:
        causes = frozenset(self.identify(c.requirement) for c in backtrack_causes)
        return self._preference_of(identifier, information, causes)

    def _preference_of(
        self,
        identifier: Identifier,
        information: Mapping[Identifier, Iterator[Any]],
        causes: frozenset[Identifier],
    ) -> tuple[bool, bool, bool, bool, Identifier]:
        infos = tuple(information[identifier])
        known = self._preferences.get(identifier)
        if known is None or not known.holds_for(infos):
            known = self._preferences[identifier] = self._preference(identifier, infos)
        # A project whose metadata needs a build comes last: meanwhile the build runs
        # (speculation started it) and the rest of the tree is discovered.
        waits = not known.ready(self._metadata)
        return (identifier not in causes, waits, not known.pinned, not known.is_root, identifier)

    def _preference(self, identifier: Identifier, infos: tuple[Any, ...]) -> _Preference:
        """What the preference of ``identifier`` takes from its requirements alone."""
        pinned = any(
            spec.operator in ("==", "===") and "*" not in spec.version
            for info in infos
            for spec in info.requirement.specifier
        )
        is_root = any(info.parent is None for info in infos)
        name, _ = split_identifier(identifier)
        try:
            likely = self._likely(name, [info.requirement for info in infos])
        except BootstrapError:
            likely = None  # find_matches meets the error itself, with its chain
        return _Preference(infos, pinned, is_root, likely)

    def _likely(self, name: NormalizedName, requirements: Sequence[Requirement]) -> Release | None:
        specifier = SpecifierSet()
        exact: set[Version] = set()
        for requirement in requirements:
            specifier &= requirement.specifier
            exact.update(_exact_pins(requirement.specifier))
        if name in self._constraints:
            specifier &= self._constraints[name]
        matches = allowed(
            self._finder.releases(name),
            specifier,
            exact_pins=frozenset(exact),
            allow_prereleases=self._pre,
        )
        return matches[0] if matches else None

    def find_matches(
        self,
        identifier: Identifier,
        requirements: Mapping[Identifier, Iterator[Requirement]],
        incompatibilities: Mapping[Identifier, Iterator[Candidate]],
    ) -> Callable[[], Iterator[Candidate]]:
        name, extras = split_identifier(identifier)
        try:
            releases = self._finder.releases(name)
        except BootstrapError as e:
            raise e.with_context(chain=self.chain_to(name)) from None
        specifier = SpecifierSet()
        exact: set[Version] = set()
        for ident in (identifier, name):
            for requirement in requirements.get(ident, ()):
                specifier &= requirement.specifier
                exact.update(_exact_pins(requirement.specifier))
        if name in self._constraints:
            specifier &= self._constraints[name]
        bad = {c.version for ident in (identifier, name) for c in incompatibilities.get(ident, ())}
        matches = allowed(
            releases, specifier, exact_pins=frozenset(exact), allow_prereleases=self._pre
        )
        candidates = [Candidate(r, extras) for r in matches if r.version not in bad]
        # The index's data-requires-python already filtered most; a release whose own
        # metadata excludes the target is skipped lazily, when the resolver reaches it.
        return lambda: (c for c in candidates if self._python_ok(c))

    def _python_ok(self, candidate: Candidate) -> bool:
        if candidate.release.sdist.requires_python:
            return True  # the index said so, from the same metadata
        if not self._metadata.ready(candidate.release):
            # Only its build tells: resolvelib looks at the first candidate of every
            # requirement it meets, and waiting for that build here would stall the
            # whole resolution. Its dependencies say it instead (get_dependencies).
            return True
        try:
            metadata = self._metadata.metadata(candidate.release, self.chain_to(candidate.name))
        except BootstrapError as e:
            raise e.with_context(chain=self.chain_to(candidate.name)) from None
        if metadata.requires_python.contains(self._python, prereleases=True):
            return True
        logger.debug("skipping %s: Requires-Python %s", candidate, metadata.requires_python)
        return False

    def is_satisfied_by(self, requirement: Requirement, candidate: Candidate) -> bool:
        # The last answer for each requirement: it is asked about its project's pin
        # every round, and that pin seldom changes.
        found = self._satisfied.get(id(requirement))
        if found is not None and found[0] is requirement and found[1] is candidate:
            return found[2]
        satisfied = requirement.specifier.contains(candidate.version, prereleases=True)
        self._satisfied[id(requirement)] = (requirement, candidate, satisfied)
        return satisfied

    def get_dependencies(self, candidate: Candidate) -> list[Requirement]:
        dependencies = []
        if candidate.extras:
            dependencies.append(Requirement(f"{candidate.name}=={candidate.version}"))
        chain = self.chain_to(candidate.name)
        try:
            metadata = self._metadata.metadata(candidate.release, chain)
        except BootstrapError as e:
            raise e.with_context(chain=chain) from None
        self.used_metadata[(candidate.name, candidate.version)] = metadata
        if not metadata.requires_python.contains(self._python, prereleases=True):
            # A release whose Requires-Python (known only once it was built) excludes
            # the target: it requires another version of itself, so the resolver moves on.
            logger.debug("skipping %s: Requires-Python %s", candidate, metadata.requires_python)
            return [*dependencies, Requirement(f"{candidate.name}!={candidate.version}")]
        for requirement in metadata.requires_dist:
            if not self._applies(requirement, candidate.extras):
                continue
            dependencies.append(requirement)
            self.parents.setdefault(canonicalize_name(requirement.name), candidate.name)
        self._finder.prefetch(canonicalize_name(r.name) for r in dependencies)
        self._metadata.anticipate(dependencies, chain)
        return dependencies

    def _applies(self, requirement: Requirement, extras: Iterable[str]) -> bool:
        if not extras:
            # Only the base requirements: an ``extra == ...`` marker must not match "".
            return applies(requirement, self._environment, ())
        if requirement.marker is None:
            return False  # already yielded by the plain candidate
        return any(requirement.marker.evaluate({**self._environment, "extra": e}) for e in extras)


def resolve(
    requirements: Sequence[Requirement],
    finder: ReleaseFinder,
    metadata: MetadataSource,
    *,
    constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
    environment: Mapping[str, str] | None = None,
    allow_prereleases: bool = False,
    chain: Sequence[str] = (),
    reporter: BaseReporter[Requirement, Candidate, Identifier] | None = None,
    backtracking_only: bool = False,
) -> Resolution:
    """Solve ``requirements`` jointly: one release per project, or a ResolutionError that
    names the conflicting requirements and who asked for them.

    The newest allowed release of every project is tried first (one pass); resolvelib's
    backtracking search runs when that is no resolution, or always with
    ``backtracking_only``."""
    env: dict[str, str] = dict(environment or _default_environment())
    wanted = [r for r in requirements if applies(r, env, ())]
    finder.prefetch(canonicalize_name(r.name) for r in wanted)

    def provider() -> _Provider:
        made = _Provider(finder, metadata, constraints or {}, env, allow_prereleases, chain)
        for requirement in wanted:
            made.parents.setdefault(canonicalize_name(requirement.name), None)
        return made

    if not backtracking_only:
        first = provider()
        newest = _newest_everywhere(wanted, first)
        if newest is not None:
            return _collect(newest, first, env)
    searching = provider()
    resolver = Resolver(searching, reporter or BaseReporter())
    try:
        result = resolver.resolve(wanted, max_rounds=10_000)
    except ResolutionImpossible as e:
        raise _explain(list(e.causes), searching, finder) from None
    except ResolutionTooDeep as e:
        raise ResolutionError(
            f"resolution gave up after {e.args[0]} rounds: the requirements are too tangled",
            chain=chain,
        ) from None
    return _collect(result.mapping, searching, env)


def _newest_everywhere(
    wanted: Sequence[Requirement], provider: _Provider
) -> dict[Identifier, Candidate] | None:
    """The resolution that takes the newest allowed release of every project, when that
    is one: each pin satisfies every requirement on it and is the newest release that
    does. None as soon as it is not, or when a release's metadata would need a build.

    That is what the backtracking resolver settles on too when it never meets a
    conflict (it pins newest-first), and it is the common case: a re-run of an
    unchanged tree, or a tree whose requirements never narrow a pick once made. It
    costs one look at each project, where resolvelib looks at every project in every
    round (n^2 for a tree of n projects). Anything else is left to resolvelib.
    """
    on: dict[NormalizedName, list[Requirement]] = {}
    pins: dict[NormalizedName, Release] = {}
    extras: dict[NormalizedName, set[NormalizedName]] = {}
    queue = deque(wanted)
    try:
        while queue:
            requirement = queue.popleft()
            name = canonicalize_name(requirement.name)
            on.setdefault(name, []).append(requirement)
            pin = pins.get(name)
            if pin is None:
                pin = provider._likely(name, on[name])
                if pin is None or not _usable_at_once(pin, provider):
                    return None
                pins[name] = pin
                extras[name] = set()
                queue.extend(provider.get_dependencies(Candidate(pin)))
            elif not requirement.specifier.contains(pin.version, prereleases=True):
                return None  # a pick to revise: resolvelib's work
            for extra in sorted({canonicalize_name(e) for e in requirement.extras} - extras[name]):
                extras[name].add(extra)
                queue.extend(provider.get_dependencies(Candidate(pin, frozenset({extra}))))
    except BootstrapError:
        return None  # resolvelib meets it again, and explains it in its own terms
    if any(provider._likely(name, on[name]) != pin for name, pin in pins.items()):
        return None  # a later requirement narrowed an earlier pick
    mapping: dict[Identifier, Candidate] = {name: Candidate(pin) for name, pin in pins.items()}
    for name, names in extras.items():
        mapping.update(
            {identifier(name, [e]): Candidate(pins[name], frozenset({e})) for e in names}
        )
    return mapping


def _usable_at_once(release: Release, provider: _Provider) -> bool:
    """Whether ``release``'s metadata is at hand without a build and admits the target."""
    if not provider._metadata.ready(release):
        return False
    metadata = provider._metadata.metadata(release, provider.chain_to(release.name))
    return metadata.requires_python.contains(provider._python, prereleases=True)


def _collect(
    mapping: Mapping[Identifier, Candidate], provider: _Provider, env: Mapping[str, str]
) -> Resolution:
    pins: dict[NormalizedName, Release] = {}
    extras: dict[NormalizedName, frozenset[NormalizedName]] = {}
    for candidate in mapping.values():
        pins[candidate.name] = candidate.release
        extras[candidate.name] = extras.get(candidate.name, frozenset()) | candidate.extras
    dependencies: dict[NormalizedName, tuple[Requirement, ...]] = {}
    metadata: dict[NormalizedName, CoreMetadata] = {}
    for name, release in pins.items():
        md = provider.used_metadata[(name, release.version)]
        metadata[name] = md
        dependencies[name] = tuple(r for r in md.requires_dist if applies(r, env, extras[name]))
    return Resolution(pins, extras, dependencies, metadata, _chains(pins, dependencies, provider))


def _chains(
    pins: Mapping[NormalizedName, Release],
    dependencies: Mapping[NormalizedName, tuple[Requirement, ...]],
    provider: _Provider,
) -> dict[NormalizedName, tuple[str, ...]]:
    """Shortest path from a root to each pin, over the final result's own edges (the
    parents seen while resolving may belong to abandoned candidates)."""
    roots = [n for n, parent in provider.parents.items() if parent is None and n in pins]
    chains: dict[NormalizedName, tuple[str, ...]] = {
        name: (*provider.base_chain, name) for name in roots
    }
    queue = list(roots)
    while queue:
        name = queue.pop(0)
        for requirement in dependencies[name]:
            child = canonicalize_name(requirement.name)
            if child in pins and child not in chains:
                chains[child] = (*chains[name], child)
                queue.append(child)
    for name in pins:
        chains.setdefault(name, provider.chain_to(name))
    return chains


def _explain(causes: Sequence[Any], provider: _Provider, finder: ReleaseFinder) -> BootstrapError:
    names = sorted({canonicalize_name(c.requirement.name) for c in causes})
    lines = []
    for cause in causes:
        who = "the top-level requirements" if cause.parent is None else str(cause.parent)
        lines.append(f"{cause.requirement} (required by {who})")
    if len(names) == 1:
        name = names[0]
        # When every requirement on a project fails alone, the reason is the project.
        if not finder.releases(name) and finder.has_files(name):
            return NoSourceDistributionError(
                f"{name} has no source distribution (sdist) usable here; bootstrapper "
                "builds everything from source",
                package=name,
                chain=provider.chain_to(name),
                details=no_sdist_advice(name),
            )
        return ResolutionError(
            f"no version of {name} satisfies every requirement on it",
            package=name,
            chain=provider.chain_to(name),
            details="conflicting requirements:\n" + "\n".join(f"  {line}" for line in lines),
        )
    return ResolutionError(
        f"no versions of {', '.join(names)} can be installed together",
        package=names[0],
        chain=provider.chain_to(names[0]),
        details="conflicting requirements:\n" + "\n".join(f"  {line}" for line in lines),
    )


def no_sdist_advice(name: NormalizedName) -> str:
    """What to do about a project that publishes no sdist: the two settings that solve it."""
    return (
        f"say where its source is, or take the upstream wheel, in "
        f"OVERRIDES/settings/{name}.yaml (default ./overrides):\n"
        f'  source: {{url: "https://example.org/{name}-${{version}}.tar.gz"}}'
        f'   (or: source: {{git: "https://example.org/{name}.git", ref: "v${{version}}"}})\n'
        "  prebuilt: true"
    )


def parse_constraints(lines: Iterable[Requirement]) -> dict[NormalizedName, SpecifierSet]:
    merged: dict[NormalizedName, SpecifierSet] = {}
    for requirement in lines:
        name = canonicalize_name(requirement.name)
        merged[name] = merged.get(name, SpecifierSet()) & requirement.specifier
    return merged
