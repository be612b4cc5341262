"""A build unit as a task on a Dask cluster: the same :func:`run_unit` as a local build,
on a worker, from copies of the unit's files; its wheel, record and log come back and the
coordinating command finishes the build as it finishes every other."""

from __future__ import annotations

import dataclasses
import os
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .builder import PackageBuilder, SourceTree
from .errors import BootstrapError, BuildError, UsageError
from .isolation import readonly_view_problem, required_isolation
from .progress import Reporter
from .records import BuildRecord
from .remote import DaskCluster
from .single_build import BuildConfig, BuildUnit, UnitOutput, run_unit

# A worker runs several tasks at once in threads; sysconfig's first use is not
# thread-safe on Python 3.11, so fill its table now, while the task is unpickled.
sysconfig.get_config_vars()


@dataclass(frozen=True)
class RemoteBuild:
    """What a worker gets besides the files: the unit and how the run builds."""

    unit: BuildUnit
    config: BuildConfig


def config_here(config: BuildConfig) -> tuple[BuildConfig, list[str]]:
    """The run's build configuration as this machine can honour it: the network cut off
    where the coordinator's builds were (or an error), the read-only view where it was
    asked for and this machine can make it (or a note)."""
    notes = []
    isolation = tuple(required_isolation(bool(config.isolation)))
    sandbox = config.sandbox
    if sandbox.readonly_view and (problem := readonly_view_problem()) is not None:
        notes.append(f"note: this worker cannot give builds a read-only view ({problem})")
        sandbox = dataclasses.replace(sandbox, readonly_view=False)
    return dataclasses.replace(config, isolation=isolation, sandbox=sandbox), notes


def build_on_worker(spec: RemoteBuild, files: Mapping[str, Path], work: Path) -> dict[str, Path]:
    """The task: build the unit in ``work`` from the worker's copies of its files."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    unit = spec.unit.relocated(files)
    try:
        config, notes = config_here(spec.config)
    except UsageError as e:
        raise BuildError(
            f"{unit.release.name}: on this worker: {e.message}", package=unit.release.name
        ) from None
    builder = config.builder(work / ".work", logs)
    with builder.log(unit.release, fresh=True) as log:
        for note in notes:
            log.write(f"{note}\n".encode())
        output = run_unit(unit, builder, log=log)
    builder.close()
    record = work / "record.json"
    record.write_text(output.record.to_json(), encoding="utf-8")
    return {"wheel": output.wheel, "record": record, "log": output.log}


class DaskUnitRunner:
    """Runs units on the cluster in place of :func:`run_unit`, for any command."""

    def __init__(self, cluster: DaskCluster, config: BuildConfig, reporter: Reporter) -> None:
        self._cluster = cluster
        self._config = config
        self._reporter = reporter

    def __call__(
        self,
        unit: BuildUnit,
        builder: PackageBuilder,
        *,
        log: BinaryIO | None = None,
        prepared: SourceTree | None = None,
    ) -> UnitOutput:
        """Build ``unit`` on a worker (a tree the caller prepared is of no use there) and
        bring back its wheel beside where a local build puts it; the worker's log goes
        on in ``log``."""
        if log is None:
            with builder.log(unit.release, fresh=True) as fresh:
                return self(unit, builder, log=fresh)
        release = unit.release
        resources = dict(unit.plan.settings.resources)
        self._cluster.check_resources(str(release.name), resources)
        log.write(f"\n== building on the Dask cluster at {self._cluster.address}\n".encode())
        log.flush()
        try:
            outcome = self._cluster.run(
                build_on_worker,
                RemoteBuild(unit, self._config),
                unit.input_files(),
                task=f"{release.name}-{release.version}",
                resources=resources,
                on_start=lambda worker: self._reporter.started(unit.key, f"building on {worker}"),
            )
        except BootstrapError:
            raise
        except Exception as e:  # Dask's own failures (a task killed on every worker...)
            raise BuildError(
                f"{release.name}: the Dask cluster could not run its build: "
                f"{type(e).__name__}: {e}",
                package=str(release.name),
                log_path=builder.log_path(release),
            ) from e
        if "log" in outcome.files:
            log.write(f"== the log of worker {outcome.worker}\n".encode())
            log.write(outcome.files["log"][1])
            log.flush()
        if outcome.failure is not None:
            raise BuildError(
                f"{outcome.failure.message} (on Dask worker {outcome.worker})",
                package=str(release.name),
                log_path=builder.log_path(release),
                details=outcome.failure.details,
            )
        wheel_name, wheel_bytes = outcome.files["wheel"]
        if os.path.basename(wheel_name) != wheel_name or not wheel_name.endswith(".whl"):
            raise BuildError(f"{release}: the worker sent back {wheel_name!r}, not a wheel")
        record = BuildRecord.from_json(outcome.files["record"][1].decode())
        out = builder.out_dir(release) / "remote"
        out.mkdir(parents=True, exist_ok=True)
        wheel = out / wheel_name
        wheel.write_bytes(wheel_bytes)
        # ``finish`` checks these bytes against the record's sha256, as for a local build.
        record = dataclasses.replace(
            record, log=os.fspath(builder.log_path(release)), worker=outcome.worker
        )
        return UnitOutput(wheel, record, builder.log_path(release), worker=outcome.worker)
