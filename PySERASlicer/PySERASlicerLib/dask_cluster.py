"""Cases on a Dask cluster: ``process_batch(..., scheduler="tcp://host:8786")``.

One Dask task per case runs the same :func:`extract_case` as the local pool; results come back
as they finish and go through the same ``on_result`` hook (progress file, resume) and
``progress_fn`` events. The Excel/CSV/provenance files are written by the caller, on the client.

* File paths are read by the workers: they must see the same paths (a shared filesystem);
  relative paths are made absolute on the client first. In-memory arrays are scattered once.
* Settings travel as JSON (``Settings.to_dict``), the case as a small dataclass.
* A case that raises on the worker is its Report row. A worker that dies is retried by Dask's
  own mechanism, the scheduler's ``allowed-failures`` (set to ``retries`` for the run and put
  back afterwards); past it the case is a Report row naming the worker death.
* Before any case runs, the workers' package versions (``client.get_versions``) and our
  package's code are compared with the client's; a mismatch is an error listing them. Each
  task checks the code again, so a worker that joins later with other code cannot slip in.

``distributed`` is imported only here, and only when a scheduler is given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import os
import queue
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from .case_extraction import Callback, CaseResult, extract_case
from .cases import Case
from .dependencies import DISTRIBUTED
from .pool import ProgressFn, _failure_result, case_end_event
from .runlog import LOGGER
from .settings import Settings, SettingsError

#: Worker deaths a case survives before it becomes a Report row (Dask's allowed-failures).
DEFAULT_RETRIES = 1
#: Packages whose versions must agree between the client and every worker: Dask's own
#: (serialisation, protocol) and the ones that compute the features.
CHECKED_PACKAGES = ("dask", "distributed", "cloudpickle", "msgpack", "numpy", "scipy", "SimpleITK", "pydicom")
#: How long to wait for the first worker before checking versions (a SLURM job may queue).
WORKER_WAIT_SECONDS = 60.0
_POLL_SECONDS = 0.05
#: How long to try to reach the scheduler.
CONNECT_SECONDS = 20
#: How long fetching one finished case's result may take.
RESULT_SECONDS = 300


class ClusterError(SettingsError):
    """The cluster cannot run this batch (no ``distributed``, no connection, version mismatch)."""


def import_distributed():
    """``distributed``, or a :class:`ClusterError` saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise ClusterError(
            f"scheduler: running on a Dask cluster needs the Python package distributed ({exc}); install it "
            f"with pip install \"PySERASlicerLib[dask]\" (or pip install \"{DISTRIBUTED.pip}\"), the same "
            "version on the client and every worker") from None
    return distributed


# ---------------------------------------------------------------------------------------------
# Identity of the code that computes the features (client and workers)
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over this package's ``.py`` files (relative names and contents, sorted)."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0" + path.read_bytes())
    return digest.hexdigest()


def worker_identity() -> Dict[str, Any]:
    """What this process would compute features with: Python, package versions, our code."""
    from importlib.metadata import PackageNotFoundError, version

    from .version import __version__

    identity: Dict[str, Any] = {"python": "{}.{}".format(*sys.version_info[:2]), "PySERASlicerLib": __version__,
                                "PySERASlicerLib code": code_fingerprint()[:16],
                                "PySERASlicerLib location": str(Path(__file__).resolve().parent)}
    for name in CHECKED_PACKAGES:
        try:
            identity[name] = version(name)
        except PackageNotFoundError:
            identity[name] = None
    return identity


def _identity_probe():
    """A function for ``client.run``: our package's identity on that worker, or why it cannot
    be imported there. Nested, so cloudpickle sends it by value: it runs where PySERA is missing."""
    def probe() -> Dict[str, Any]:
        try:
            from PySERASlicerLib.dask_cluster import worker_identity
        except Exception as exc:  # the package is missing or broken on that worker
            return {"PySERASlicerLib": f"not importable ({type(exc).__name__}: {exc})"}
        return worker_identity()
    return probe


def version_mismatches(client_identity: Dict[str, Any], workers: Dict[str, Dict[str, Any]]) -> List[str]:
    """Lines ``package: client X, worker tcp://... Y`` for every difference (location excluded)."""
    lines = []
    for address, identity in sorted(workers.items()):
        for key, wanted in client_identity.items():
            if key.endswith("location"):
                continue
            found = identity.get(key, "MISSING")
            if found != wanted:
                lines.append(f"{key}: client {wanted}, worker {address} {found}")
    return lines


# ---------------------------------------------------------------------------------------------
# Connection
# ---------------------------------------------------------------------------------------------
class DaskCluster:
    """A connection to a Dask scheduler for one batch (a context manager).

    ``scheduler`` is an address (``"tcp://host:8786"``, a scheduler file path ending in
    ``.json``) or a ``distributed.Client`` (not closed afterwards). ``retries``: worker deaths
    a case survives. Raises :class:`ClusterError` when the cluster cannot run the batch.
    """

    def __init__(self, scheduler: Any, retries: Optional[int] = None, worker_wait: float = WORKER_WAIT_SECONDS):
        retries = DEFAULT_RETRIES if retries is None else retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ClusterError(f"cluster_retries: {retries!r} is not valid; accepted values: an integer >= 0")
        distributed = import_distributed()
        self.retries = retries
        self._own_client = not isinstance(scheduler, distributed.Client)
        self._previous_allowed_failures: Optional[int] = None
        if self._own_client:
            if not isinstance(scheduler, (str, os.PathLike)) or not str(scheduler).strip():
                raise ClusterError(f"scheduler: {scheduler!r} is not valid; accepted values: an address such as "
                                   "tcp://host:8786, a scheduler file (.json), or a distributed.Client")
            target = str(scheduler).strip()
            try:
                if target.endswith(".json"):
                    self.client = distributed.Client(scheduler_file=target, timeout=CONNECT_SECONDS)
                else:
                    self.client = distributed.Client(target, timeout=CONNECT_SECONDS)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ClusterError(f"scheduler {target}: cannot connect ({type(exc).__name__}: {exc})") from None
        else:
            self.client = scheduler
        try:
            self.address = self.client.scheduler.address
            self.versions = self._check_versions(worker_wait)
            self._previous_allowed_failures = self.client.run_on_scheduler(_allowed_failures_setter(retries))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> DaskCluster:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _check_versions(self, worker_wait: float) -> Dict[str, Any]:
        try:
            self.client.wait_for_workers(1, timeout=worker_wait)
        except (TimeoutError, asyncio.TimeoutError):  # distinct types before Python 3.11
            raise ClusterError(f"scheduler {self.address}: no worker joined within {worker_wait:g} s") from None
        client_identity = worker_identity()
        identities = self.client.run(_identity_probe())
        mismatches = version_mismatches(client_identity, identities)
        if mismatches:
            raise ClusterError(f"scheduler {self.address}: the workers differ from this client (install the same "
                               "versions everywhere): " + "; ".join(mismatches))
        dask_versions = self.client.get_versions(packages=list(CHECKED_PACKAGES))
        worker_packages = [(v or {}).get("packages") for v in dask_versions["workers"].values()]
        distinct = [p for i, p in enumerate(worker_packages) if p not in worker_packages[:i]]
        return {
            "workers": sorted(identities),
            # equal on the client and every worker (checked above); the location may differ
            "versions": {k: v for k, v in client_identity.items() if not k.endswith("location")},
            "dask_get_versions": {
                "scheduler": (dask_versions.get("scheduler") or {}).get("packages"),
                "workers": distinct[0] if len(distinct) == 1 else distinct,
            },
        }

    @property
    def worker_addresses(self) -> List[str]:
        return list(self.versions["workers"])

    def provenance(self) -> Dict[str, Any]:
        """For the provenance JSON: scheduler address, retries, workers and their versions."""
        return {"scheduler": self.address, "cluster_retries": self.retries, **self.versions}

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is None:
            return
        try:
            if self._previous_allowed_failures is not None:
                client.run_on_scheduler(_allowed_failures_setter(self._previous_allowed_failures))
        except Exception as exc:  # the scheduler is gone: nothing to put back
            LOGGER.info(f"scheduler {getattr(self, 'address', '?')}: allowed-failures not restored ({exc})")
        finally:
            if self._own_client:
                client.close()
            self.client = None

    # -----------------------------------------------------------------------------------------
    def run_cases(self, cases: Sequence[Case], settings: Settings, callback: Callback = None, *,
                  progress_fn: ProgressFn = None,
                  on_result: Optional[Callable[[int, CaseResult], None]] = None) -> List[CaseResult]:
        """Run ``cases`` on the cluster, one task per case, with :func:`.pool.run_cases`'s
        contract: ``on_result(index, result)`` as each finishes, ``progress_fn`` events,
        ``callback`` START/END per ROI, results returned in case order. KeyboardInterrupt
        cancels the outstanding tasks and propagates."""
        distributed = import_distributed()
        client = self.client
        topic = f"pysera-{uuid.uuid4().hex}"
        events: queue.Queue = queue.Queue()
        results: List[Optional[CaseResult]] = [None] * len(cases)
        attempts = [0] * len(cases)  # a case is started again after its worker died
        settings_json = json.dumps(settings.to_dict())
        fingerprint = code_fingerprint()

        def deliver(index: int, message: Dict[str, Any]) -> None:
            kind = message["kind"]
            if kind == "start" and results[index] is None:
                attempts[index] += 1
                if progress_fn:
                    progress_fn({"event": "case_start", "case_id": cases[index].case_id, "index": index,
                                 "pid": message["pid"], "worker": message["worker"], "attempt": attempts[index]})
            elif kind == "roi" and callback is not None:
                try:
                    callback(message["flag"], message["case_id"], message["roi"])
                except Exception as exc:  # the user's callback must not stop the batch
                    LOGGER.warning(f"callback_fn raised {type(exc).__name__}: {exc}")

        def drain() -> None:
            while True:
                try:
                    _, message = events.get_nowait()
                except queue.Empty:
                    return
                deliver(message["index"], message)

        def finish(index: int, result: CaseResult) -> None:
            drain()
            results[index] = result
            if on_result:
                on_result(index, result)
            if progress_fn:
                progress_fn(case_end_event(index, result, results))

        client.subscribe_topic(topic, events.put)
        scattered: Dict[int, Any] = {}
        futures: Dict[Any, int] = {}
        try:
            for index, case in enumerate(cases):
                job, image, mask = _prepare(case, client, scattered)
                future = client.submit(_extract_on_worker, job, image, mask, settings_json, topic, index,
                                       fingerprint, key=f"pysera-case-{index:05d}-{_safe_key(case.case_id)}-{topic}",
                                       pure=False)
                futures[future] = index
            completed = distributed.as_completed(list(futures))
            while not completed.is_empty():
                if not completed.has_ready():  # meanwhile: start and ROI events, in this thread
                    drain()
                    time.sleep(_POLL_SECONDS)
                    continue
                for future in completed.next_batch(block=False):
                    index = futures[future]
                    result = self._collect(future, cases[index], settings, distributed)
                    if result is None:  # computed again by Dask: wait for it
                        completed.add(future)
                        continue
                    finish(index, result)
                    future.release()
        except BaseException:  # KeyboardInterrupt, Cancel, a lost scheduler: stop the rest now
            outstanding = [f for f in futures if not f.done()]
            if outstanding:
                try:
                    client.cancel(outstanding, force=True)
                except Exception as exc:
                    LOGGER.info(f"could not cancel {len(outstanding)} Dask task(s): {exc}")
            raise
        finally:
            try:
                client.unsubscribe_topic(topic)
            except Exception:  # noqa: S110  (the connection may already be gone)
                pass
            if scattered:
                try:
                    client.cancel(list(scattered.values()))
                except Exception:  # noqa: S110
                    pass
        return [r for r in results if r is not None]

    def _collect(self, future: Any, case: Case, settings: Settings, distributed: Any) -> Optional[CaseResult]:
        """A finished future -> its CaseResult; an error, a killed worker or a cancelled task
        becomes the case's Report row. None: not final after all (the result was lost with its
        worker before it was fetched, and Dask computes it again)."""
        status = future.status
        if status == "finished":
            try:
                return future.result(timeout=RESULT_SECONDS)
            except Exception as exc:
                if future.status in ("lost", "pending"):
                    return None
                return _failure_result(case, f"its result could not be fetched from the Dask cluster "
                                             f"({type(exc).__name__}: {exc}); the case was skipped", settings)
        if status == "cancelled":
            return _failure_result(case, "its Dask task was cancelled on the cluster; the case was skipped", settings)
        if status != "error":
            return None
        exc = future.exception()
        if isinstance(exc, distributed.KilledWorker):
            return _failure_result(
                case, f"the Dask worker died while processing this case, {self.retries + 1} time(s) "
                      f"(cluster_retries={self.retries}; last worker {_last_worker(exc)}); the case was skipped",
                settings)
        return _failure_result(case, f"failed on the Dask cluster: {type(exc).__name__}: {exc}", settings)


def _last_worker(exc: Any) -> str:
    worker = getattr(exc, "last_worker", None)
    return str(getattr(worker, "address", worker) or "unknown")


def _allowed_failures_setter(value: int):
    """A function for ``client.run_on_scheduler`` that sets ``allowed_failures`` and returns
    the old value. Nested, so cloudpickle sends it by value: the scheduler needs no PySERA."""
    def swap(dask_scheduler: Any) -> int:
        previous = dask_scheduler.allowed_failures
        dask_scheduler.allowed_failures = value
        return previous
    return swap


def _safe_key(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:40]


def _prepare(case: Case, client: Any, scattered: Dict[int, Any]):
    """(case without in-memory data, image, mask): paths made absolute, anything else
    scattered once (the same object used by several cases is sent once)."""
    def place(source: Any) -> Any:
        if source is None:
            return None
        if isinstance(source, (str, os.PathLike)):
            return os.path.abspath(source)
        key = id(source)
        if key not in scattered:
            scattered[key] = client.scatter(source, hash=False)
        return scattered[key]

    temp_dir = os.path.abspath(case.temp_dir) if case.temp_dir else None
    return dataclasses.replace(case, image=None, mask=None, temp_dir=temp_dir), place(case.image), place(case.mask)


def _extract_on_worker(job: Case, image: Any, mask: Any, settings_json: str, topic: str, index: int,
                       fingerprint: str) -> CaseResult:
    """The Dask task: one case, in a worker, with progress events published on ``topic``."""
    from distributed import get_worker

    worker = get_worker()
    case = dataclasses.replace(job, image=image, mask=mask)
    settings = Settings.from_dict(json.loads(settings_json))

    def publish(message: Dict[str, Any]) -> None:
        worker.log_event(topic, {"index": index, **message})

    publish({"kind": "start", "pid": os.getpid(), "worker": worker.address})
    if code_fingerprint() != fingerprint:
        return _failure_result(case, f"Dask worker {worker.address} runs other PySERASlicerLib code than the client "
                                     f"({Path(__file__).resolve().parent}); the case was skipped", settings)

    def on_roi(flag: str, case_id: str, roi: str) -> None:
        publish({"kind": "roi", "flag": flag, "case_id": case_id, "roi": roi})

    return extract_case(case, settings, on_roi)
