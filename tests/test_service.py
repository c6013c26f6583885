"""The assignment service in process: every status code, auth, batching, reload, hostile input."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from benchmarks.fake import HashingEncoder
from segmenter.config import SegmenterConfig
from segmenter.data import load_events
from segmenter.model import Segmenter
from segmenter.service import MicroBatcher, ModelHolder, Overloaded, ServiceOptions, create_app

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _load(folder: Path) -> Segmenter:
    return Segmenter.load(folder, encoder=HashingEncoder(64), progress=False)


def _fit(tables: dict[str, pl.DataFrame], k: int, folder: Path) -> Path:
    data = load_events(tables["events"])
    config = SegmenterConfig(k=k, umap_dims=0, pca_dims=8, seed=1)
    Segmenter(config, encoder=HashingEncoder(64), progress=False).fit(data).save(folder)
    return folder


@pytest.fixture(scope="module")
def models(small_tables: dict[str, pl.DataFrame], tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serve")
    damaged = root / "damaged" / "model"
    damaged.mkdir(parents=True)
    (damaged / "segmenter.json").write_text("{not json")
    return {
        "k4": _fit(small_tables, 4, root / "k4" / "model"),
        "k3": _fit(small_tables, 3, root / "k3" / "model"),
        "damaged": damaged,
    }


def _events(tables: dict[str, pl.DataFrame], users: list[str]) -> list[dict[str, Any]]:
    frame = tables["events"].filter(pl.col("user_id").is_in(users))
    return frame.with_columns(pl.col("timestamp").dt.to_string("%Y-%m-%dT%H:%M:%S")).to_dicts()


def _client(folder: Path, **options: Any) -> TestClient:
    holder = ModelHolder(folder, loader=_load)
    holder.load()
    return TestClient(create_app(holder, ServiceOptions(token=TOKEN, **options)))


@pytest.fixture(scope="module")
def client(models: dict[str, Path]) -> Iterator[TestClient]:
    with _client(models["k4"]) as c:
        yield c


def test_assign_places_customers_as_the_model_does(
    client: TestClient, small_tables: dict[str, pl.DataFrame], models: dict[str, Path]
) -> None:
    users = ["C0000001", "C0000002", "C0000003"]
    r = client.post("/v1/assign", json={"events": _events(small_tables, users)}, headers=AUTH)
    assert r.status_code == 200, r.text
    got = {c["user_id"]: c for c in r.json()["customers"]}
    assert sorted(got) == users
    model = _load(models["k4"])
    frame = small_tables["events"].filter(pl.col("user_id").is_in(users))
    direct = model.predict(load_events(frame), map_coords=False)
    for row in direct.to_dicts():
        answer = got[row["user_id"]]
        assert answer["segment"] == row["segment"]
        assert answer["segment_name"] == row["segment_name"]
        assert answer["confidence"] == pytest.approx(row["confidence"], abs=1e-5)
        assert answer["distance"] == pytest.approx(row["distance"], abs=1e-5)


def test_reasons_come_with_each_placement_when_asked(
    small_tables: dict[str, pl.DataFrame], models: dict[str, Path]
) -> None:
    from segmenter.explain.customer import Explainer
    from segmenter.service.reasons import explain_placed

    users = ["C0000001", "C0000002"]
    with _client(models["k4"], reasons=explain_placed) as c:
        r = c.post("/v1/assign", json={"events": _events(small_tables, users)}, headers=AUTH)
    assert r.status_code == 200, r.text
    got = {row["user_id"]: row for row in r.json()["customers"]}
    # the service's reasons are the explainer's own lines for the same customer
    model = _load(models["k4"])
    data = load_events(small_tables["events"].filter(pl.col("user_id").is_in(users)))
    features = model.recipe_.features(data.events)
    customers = features.join(model.recipe_.documents(data.events, features), on="user_id")
    explainer = Explainer(model, progress=False).fit(customers)
    for user in users:
        expected = explainer.explain(user).text().splitlines()[1:]
        assert got[user]["reasons"] == expected and expected
        assert got[user]["segment"] == explainer.explain(user).segment


def test_segments_health_ready_and_metrics(client: TestClient) -> None:
    segments = client.get("/v1/segments", headers=AUTH).json()["segments"]
    assert [s["id"] for s in segments] == [0, 1, 2, 3] and all(s["name"] for s in segments)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["ready"] is True
    text = client.get("/metrics", headers=AUTH).text
    assert 'segmenter_requests_total{route="/v1/segments",status="200"}' in text
    assert "segmenter_request_seconds_bucket" in text
    assert "segmenter_batch_customers_bucket" in text


def test_bearer_token_guards_every_route_but_health(client: TestClient) -> None:
    for method, route in [
        ("post", "/v1/assign"),
        ("get", "/v1/segments"),
        ("get", "/metrics"),
        ("post", "/admin/reload"),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = getattr(client, method)(route, headers=headers)
            assert r.status_code == 401, (route, headers)
            assert r.json()["error"]["field"] == "authorization"
            assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "field", "match"),
    [
        (b"{not json", 400, "body", "not valid UTF-8 JSON"),
        (b"\xff\xfe\x00", 400, "body", "not valid UTF-8 JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "body", "RecursionError"),
        (
            b'{"events": [{"user_id": "a", "timestamp": "2025-01-01", "amount": NaN}]}',
            400,
            "body",
            "NaN is not a JSON number",
        ),
        (b"[]", 422, "body", "JSON object"),
        (b'{"events": {}}', 422, "events", "non-empty list"),
        (b'{"events": []}', 422, "events", "non-empty list"),
        (b'{"events": [1]}', 422, "events[0]", "JSON object"),
        (b'{"events": [{"timestamp": "2025-01-01"}]}', 422, "events[0].user_id", "required"),
        (
            b'{"events": [{"user_id": "a", "timestamp": "2025-01-01"}, {"user_id": "a", '
            b'"timestamp": "2025-01-02", "amount": "12"}]}',
            422,
            "events[1].amount",
            "number",
        ),
        (
            b'{"events": [{"user_id": "a", "timestamp": "2025-01-01", "amount": 1e400}]}',
            422,
            "events[0].amount",
            "finite",
        ),
        (
            b'{"events": [{"user_id": ["a"], "timestamp": "2025-01-01"}]}',
            422,
            "events[0].user_id",
            "string",
        ),
        (
            b'{"events": [{"user_id": "a", "timestamp": "2025-01-01"}, {"user_id": "b", '
            b'"timestamp": "31/02/2025 25:00"}]}',
            422,
            "events[1].timestamp",
            "cannot parse",
        ),
        (
            b'{"events": [{"user_id": " ", "timestamp": "2025-01-01"}]}',
            422,
            "events[0].user_id",
            "empty",
        ),
    ],
)
def test_bad_bodies_are_400_or_422_naming_the_field(
    client: TestClient, body: bytes, status: int, field: str, match: str
) -> None:
    r = client.post("/v1/assign", content=body, headers=AUTH)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["field"] == field
    assert match in error["message"]


def test_limits_give_413(models: dict[str, Path], small_tables: dict[str, pl.DataFrame]) -> None:
    events = _events(small_tables, ["C0000001", "C0000002", "C0000003"])
    with _client(models["k4"], max_body_bytes=4_000, max_customers=2) as c:
        big = json.dumps({"events": events * 20}).encode()
        r = c.post("/v1/assign", content=big, headers=AUTH)
        assert r.status_code == 413 and "over the limit of 4000" in r.json()["error"]["message"]
        # a chunked body that declares no length is cut at the limit too
        r = c.post("/v1/assign", content=iter([big[:3000], big[3000:]]), headers=AUTH)
        assert r.status_code == 413
        three = [{"user_id": u, "timestamp": "2025-01-01"} for u in "abc"]
        r = c.post("/v1/assign", json={"events": three}, headers=AUTH)
        assert r.status_code == 413 and r.json()["error"]["message"].startswith("too many custom")


def test_full_queue_and_missing_model_give_503_with_retry_after(
    models: dict[str, Path], small_tables: dict[str, pl.DataFrame]
) -> None:
    events = _events(small_tables, ["C0000001", "C0000002", "C0000003"])
    with _client(models["k4"], max_queue=2, max_batch=1) as c:
        r = c.post("/v1/assign", json={"events": events}, headers=AUTH)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "queue full" in r.json()["error"]["message"]
    holder = ModelHolder(models["damaged"], loader=_load)
    with TestClient(create_app(holder)) as c:
        assert c.get("/readyz").status_code == 503
        r = c.post("/v1/assign", json={"events": events})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert c.get("/healthz").status_code == 200


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["events", "user_id", "timestamp", "amount", "text", "x"]),
                inner,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_no_body_a_client_sends_gives_a_500(client: TestClient, body: Any) -> None:
    for payload in (body, {"events": body}, {"events": [body]}):
        r = client.post("/v1/assign", content=json.dumps(payload), headers=AUTH)
        assert r.status_code in (200, 400, 413, 422), (payload, r.text)


def test_micro_batching_keeps_each_request_its_own_customers(
    models: dict[str, Path], small_tables: dict[str, pl.DataFrame]
) -> None:
    """Two requests naming the same user id with different events share one model call and each
    gets the placement of its own events."""
    model = _load(models["k4"])
    frames = [
        small_tables["events"].filter(pl.col("user_id") == u) for u in ("C0000001", "C0000009")
    ]
    same_id = [load_events(f.with_columns(pl.lit("X").alias("user_id"))) for f in frames]
    alone = [model.predict(d, map_coords=False) for d in same_id]
    batches: list[int] = []

    async def run() -> list[pl.DataFrame]:
        batcher = MicroBatcher(
            lambda d: model.predict(d, map_coords=False),
            max_wait_ms=50,
            on_batch=lambda n, _: batches.append(n),
        )
        await batcher.start()
        try:
            return list(await asyncio.gather(*(batcher.submit(d) for d in same_id)))
        finally:
            await batcher.stop()

    together = asyncio.run(run())
    assert batches == [2]
    for got, want in zip(together, alone, strict=True):
        assert got["user_id"].to_list() == ["X"]
        exact = ["segment", "segment_name", "value_tier", "taste_group"]
        assert got.select(exact).equals(want.select(exact))
        # a batched matrix product may differ from a single row's in the last float32 bit
        for column in ("confidence", "distance"):
            assert got[column][0] == pytest.approx(want[column][0], abs=1e-6)


def test_queue_timeout_sheds_requests_that_waited_too_long(models: dict[str, Path]) -> None:
    def slow(data: Any) -> pl.DataFrame:
        time.sleep(0.2)
        return pl.DataFrame({"user_id": ["0\x1fwarmup"]})

    async def run() -> list[Any]:
        batcher = MicroBatcher(slow, max_wait_ms=0, max_batch=1, queue_timeout_s=0.05)
        await batcher.start()
        data = load_events(pl.DataFrame({"user_id": ["a"], "timestamp": ["2025-01-01"]}))
        try:
            return list(
                await asyncio.gather(
                    *(batcher.submit(data) for _ in range(3)), return_exceptions=True
                )
            )
        finally:
            await batcher.stop()

    results = asyncio.run(run())
    assert isinstance(results[0], pl.DataFrame)
    assert all(isinstance(r, Overloaded) and "waited" in str(r) for r in results[1:])


def test_reload_swaps_models_without_dropping_requests_and_refuses_a_bad_folder(
    models: dict[str, Path], small_tables: dict[str, pl.DataFrame]
) -> None:
    events = _events(small_tables, ["C0000004"])
    with _client(models["k4"]) as c:
        statuses: list[int] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                statuses.append(
                    c.post("/v1/assign", json={"events": events}, headers=AUTH).status_code
                )

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            r = c.post("/admin/reload", json={"model": str(models["k3"])}, headers=AUTH)
            assert r.status_code == 200 and r.json()["segments"] == 3
            r = c.post("/admin/reload", json={"model": str(models["damaged"])}, headers=AUTH)
            assert (
                r.status_code == 409 and "old model keeps serving" in r.json()["error"]["message"]
            )
            r = c.post("/admin/reload", json={"model": 3}, headers=AUTH)
            assert r.status_code == 422 and r.json()["error"]["field"] == "model"
        finally:
            stop.set()
            worker.join()
        assert statuses and set(statuses) == {200}
        assert len(c.get("/v1/segments", headers=AUTH).json()["segments"]) == 3
        text = c.get("/metrics", headers=AUTH).text
        assert 'segmenter_model_reloads_total{outcome="refused"} 1.0' in text


def test_request_logs_carry_no_customer_data(
    client: TestClient, small_tables: dict[str, pl.DataFrame], caplog: pytest.LogCaptureFixture
) -> None:
    events = _events(small_tables, ["C0000005"])
    with caplog.at_level(logging.INFO, logger="segmenter.service"):
        assert client.post("/v1/assign", json={"events": events}, headers=AUTH).status_code == 200
        client.post("/v1/assign", json={"events": [{**events[0], "amount": "x"}]}, headers=AUTH)
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith(".app")]
    assert [entry["status"] for entry in logged] == [200, 422]
    text = caplog.text
    assert "C0000005" not in text and "x" not in [e.get("value") for e in logged]


# -- a real uvicorn process with the packaged encoder ----------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_uvicorn_process_serves_reloads_on_sighup_and_stops(
    tmp_path: Path, small_tables: dict[str, pl.DataFrame]
) -> None:
    events = small_tables["events"].filter(pl.col("user_id") < "C0000060")
    config = SegmenterConfig(k=3, umap_dims=0, pca_dims=8, seed=2)
    model = Segmenter(config, progress=False).fit(load_events(events))
    model.save(tmp_path / "model")
    port = _free_port()
    env = {**os.environ, "SEGMENTER_SERVE_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.serve",
            "--model",
            str(tmp_path / "model"),
            "--port",
            str(port),
        ],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/readyz").status_code == 200:
                        break
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.1)
            users = ["C0000007", "C0000011"]
            body = {"events": _events(small_tables, users)}
            assert http.post("/v1/assign", json=body).status_code == 401
            r = http.post("/v1/assign", json=body, headers=AUTH)
            assert r.status_code == 200, r.text
            frame = small_tables["events"].filter(pl.col("user_id").is_in(users))
            want = model.predict(load_events(frame), map_coords=False)
            got = {c["user_id"]: c["segment"] for c in r.json()["customers"]}
            assert got == dict(want.select("user_id", "segment").iter_rows())
            proc.send_signal(signal.SIGHUP)
            for _ in range(300):
                text = http.get("/metrics", headers=AUTH).text
                if 'segmenter_model_reloads_total{outcome="ok"} 1.0' in text:
                    break
                time.sleep(0.1)
            else:
                pytest.fail("SIGHUP did not reload the model")
            assert http.post("/v1/assign", json=body, headers=AUTH).status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        # uvicorn re-raises the signal it shut down on once shutdown completed
        assert proc.returncode in (0, -signal.SIGTERM), out
        assert "Application shutdown complete" in out
        assert "C0000007" not in out  # request logs carry no customer ids
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
